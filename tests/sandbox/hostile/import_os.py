import os
def attack(db):
    return os.listdir('/')
