def attack(db):
    return 'x' * (8 * 1024 * 1024)
