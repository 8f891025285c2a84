def find_candidate_by_email(db, email):
    """Return the candidate registered with exactly this email address."""
    for candidate_id in sorted(db["candidates"]):
        candidate = db["candidates"][candidate_id]
        if candidate.get("email") == email:
            return {
                "candidate_id": candidate_id,
                "full_name": candidate.get("full_name"),
                "email": candidate.get("email"),
            }
    raise ToolError(f"No candidate is registered with email '{email}'.")
