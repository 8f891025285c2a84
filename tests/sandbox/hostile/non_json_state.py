def attack(db):
    db['orders']['o1']['tags'] = {'a', 'b'}
    return 1
