def attack(db):
    return [c.__name__ for c in ().__class__.__bases__[0].__subclasses__()]
