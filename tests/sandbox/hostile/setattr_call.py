def attack(db):
    setattr(db, 'x', 1)
    return 1
