# A factorial that takes far longer than a call may (C code: the watchdog kills it).
import math

def attack(db):
    return math.factorial(10 ** 8) % 7
