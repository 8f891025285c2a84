import time
def attack(db):
    return time.time()
