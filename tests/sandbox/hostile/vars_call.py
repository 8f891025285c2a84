def attack(db):
    return vars()
