def attack(db):
    with db as x:
        return x
