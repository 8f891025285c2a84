def attack(db):
    exec('x = 1')
    return 1
