def attack(db):
    print('hi')
    return 1
