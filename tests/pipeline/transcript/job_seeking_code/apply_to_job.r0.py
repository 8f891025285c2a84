def apply_to_job(db, candidate_id, posting_id, cover_note=None):
    """Submit an application of `candidate_id` to the open posting `posting_id`.

    Returns the new application's id and its status (`submitted`).
    """
    posting = db["job_postings"].get(posting_id)
    if posting is None:
        raise ToolError(f"Job posting '{posting_id}' does not exist.")
    if posting.get("status") != "open":
        raise ToolError(f"Job posting '{posting_id}' is {posting.get('status')} and no longer accepts applications.")

    applications = db["applications"]

    def new_application_id():
        n = len(applications) + 1
        while "app_" + str(n).zfill(4) in applications:
            n += 1
        return "app_" + str(n).zfill(4)

    application_id = new_application_id()
    applications[application_id] = {
        "application_id": application_id,
        "candidate_id": candidate_id,
        "posting_id": posting_id,
        "status": "submitted",
        "cover_note": cover_note or "",
    }
    return {"application_id": application_id, "status": "submitted"}
