def attack(db):
    return '{0.__class__.__base__}'.format(db)
