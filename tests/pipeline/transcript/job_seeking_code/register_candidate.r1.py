from datetime import date


def register_candidate(db, full_name, email):
    """Create a candidate profile for an email address no one has registered yet.

    The profile is stamped with today's date (the sandbox's clock); ids are minted from
    the table's prefix and the next free number, as the environment requires.
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
        "registered_on": date.today().isoformat(),
    }
    return {"candidate_id": candidate_id, "full_name": full_name, "email": email}
