# The thread's shared decimal context is not offered (its state would leak between calls).
import decimal

def attack(db):
    decimal.getcontext().prec = 3
    return 1
