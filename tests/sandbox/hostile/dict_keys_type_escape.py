def attack(db):
    k = db.keys()
    return k.mapping
