def attack(db):
    return ''.join.__self__
