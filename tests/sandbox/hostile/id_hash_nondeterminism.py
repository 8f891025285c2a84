def attack(db):
    return id(db) + hash('x')
