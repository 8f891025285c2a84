def attack(db):
    return getattr(getattr(getattr([], '__class__'), '__base__'), '__subclasses__')().pop(78)
