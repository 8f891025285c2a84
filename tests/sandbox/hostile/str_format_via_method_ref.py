def attack(db):
    f = 'x'.format
    return f()
