def attack(db):
    return (1).__class__.__name__
