def attack(db):
    return type(db).mro()
