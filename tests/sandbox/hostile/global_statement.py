def attack(db):
    global X
    X = 1
    return X
