def attack(db):
    return datetime.now().isoformat()
