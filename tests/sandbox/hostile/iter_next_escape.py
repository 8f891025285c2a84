def attack(db):
    it = iter([1])
    return next(it)
