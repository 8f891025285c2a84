# Arithmetic on a number with tens of millions of digits.
import math

def attack(db):
    return math.isqrt(10 ** (10 ** 8)) % 7
