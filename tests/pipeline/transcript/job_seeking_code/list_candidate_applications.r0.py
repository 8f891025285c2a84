def list_candidate_applications(db, candidate_id):
    """List a candidate's applications, newest id first, with a total for convenience."""
    if candidate_id not in db["candidates"]:
        raise ToolError(f"Candidate '{candidate_id}' does not exist.")
    found = [
        dict(application)
        for application in db["applications"].values()
        if application.get("candidate_id") == candidate_id
    ]
    found = sorted(found, key=lambda a: a["application_id"], reverse=True)
    return {"candidate_id": candidate_id, "applications": found, "total": len(found)}
