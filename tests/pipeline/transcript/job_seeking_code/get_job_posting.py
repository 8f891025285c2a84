def get_job_posting(db, posting_id):
    """Return one job posting, including whether it still accepts applications."""
    posting = db["job_postings"].get(posting_id)
    if posting is None:
        raise ToolError(f"Job posting '{posting_id}' does not exist.")
    return {
        "posting_id": posting_id,
        "company_id": posting["company_id"],
        "title": posting["title"],
        "salary_max": posting.get("salary_max"),
        "status": posting["status"],
    }
