def attack(db):
    return f'{db.__class__}'
