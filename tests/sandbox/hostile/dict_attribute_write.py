def attack(db):
    db.update = 1
    return 1
