def attack(db):
    db['orders']['o1']['status'] = 'hacked'
    db['orders']['new'] = {'status': 'x'}
    del db['orders']['o2']
    return 1 / 0
