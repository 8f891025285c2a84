def attack(db):
    return eval('1+1')
