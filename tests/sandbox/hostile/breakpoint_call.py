def attack(db):
    breakpoint()
    return 1
