def attack(db):
    f = lambda: 1
    return f.__code__
