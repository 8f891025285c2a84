def attack(db):
    return {1, 2, 3}
