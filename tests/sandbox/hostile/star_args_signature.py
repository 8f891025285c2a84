def attack(db, *args):
    return args
