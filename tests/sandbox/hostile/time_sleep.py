# Sleeping is not offered (a tool has nothing to wait for).
import time

def attack(db):
    time.sleep(30)
    return 1
