def attack(db):
    return len([0] * (10 ** 10))
