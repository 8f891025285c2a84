def attack(db):
    return len(str(7 ** (10 ** 8)))
