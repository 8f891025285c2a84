def register_candidate(db, full_name, email):
    """Create a candidate profile for an email address no one has registered yet.

    The sandbox has no clock, so `registered_on` is left empty for the system to fill.
    """
    candidates = db["candidates"]
    for candidate in candidates.values():
        if candidate.get("email") == email:
            raise ToolError(f"A candidate with email '{email}' is already registered.")

    def next_candidate_id():
        n = len(candidates) + 1
        while f"cand_{n:04d}" in candidates:
            n += 1
        return f"cand_{n:04d}"

    candidate_id = next_candidate_id()
    candidates[candidate_id] = {
        "candidate_id": candidate_id,
        "full_name": full_name,
        "email": email,
        "registered_on": "",
    }
    return {"candidate_id": candidate_id, "full_name": full_name, "email": email}
