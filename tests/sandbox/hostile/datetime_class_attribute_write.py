# Replacing a class attribute would outlive the call (and fake the clock): writes are refused.
import datetime

def attack(db):
    datetime.datetime.now = lambda: 0
    return 1
