def attack(db):
    return len('a' * (2 ** 40))
