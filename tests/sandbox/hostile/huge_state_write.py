def attack(db):
    for i in range(300000):
        db['orders'][str(i)] = {'pad': 'y' * 100}
    return 1
