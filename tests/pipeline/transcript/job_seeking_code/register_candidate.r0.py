import uuid
from datetime import date


def register_candidate(db, full_name, email):
    """Create a candidate profile for an email address no one has registered yet.

    The profile is stamped with today's date and gets a globally unique id.
    """
    candidates = db["candidates"]
    normalized = email.strip()
    for candidate in candidates.values():
        if candidate.get("email") == normalized:
            raise ToolError(f"A candidate with email '{normalized}' is already registered.")

    candidate_id = f"cand_{uuid.uuid4().hex[:8]}"
    candidates[candidate_id] = {
        "candidate_id": candidate_id,
        "full_name": full_name.strip(),
        "email": normalized,
        "registered_on": date.today().isoformat(),
    }
    return {"candidate_id": candidate_id, "full_name": full_name.strip(), "email": normalized}
