def search_job_postings(db, keyword=None, company_id=None):
    """Search job postings by title keyword and/or company.

    Filters that are not given are not applied; closed postings are listed too (their
    `status` says so). Results are ordered by posting id so the same search always lists
    postings in the same order.
    """
    def matches(posting):
        if keyword is not None and keyword.lower() not in (posting.get("title") or "").lower():
            return False
        if company_id is not None and posting.get("company_id") != company_id:
            return False
        return True

    results = []
    for posting_id in sorted(db["job_postings"]):
        posting = db["job_postings"][posting_id]
        if matches(posting):
            results.append({
                "posting_id": posting_id,
                "company_id": posting.get("company_id"),
                "title": posting.get("title"),
                "salary_max": posting.get("salary_max"),
                "status": posting.get("status"),
            })
    return results
