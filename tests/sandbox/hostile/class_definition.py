def attack(db):
    class X:
        pass
    return X
