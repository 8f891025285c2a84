def attack(db):
    return 1
attack = attack
