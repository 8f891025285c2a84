def attack(db):
    name = chr(95) * 2 + 'class' + chr(95) * 2
    return getattr(db, name)
