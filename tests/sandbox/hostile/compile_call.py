def attack(db):
    return compile('1', 'x', 'eval')
