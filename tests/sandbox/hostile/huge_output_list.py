def attack(db):
    return list(range(2000000))
