def attack(db):
    return getattr([], '__class__')
