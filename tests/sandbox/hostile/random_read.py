import random
def attack(db):
    return random.random()
