def attack(db):
    return object.__getattribute__(db, '__class__')
