def attack(db):
    db.clear()
    return 1
