def attack(db):
    return globals()
