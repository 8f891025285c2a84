import os
def attack(db):
    return os.fork()
