def attack(db, seen=[]):
    seen.append(1)
    return len(seen)
