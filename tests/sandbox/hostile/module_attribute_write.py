# Module facades are read-only: a change would outlive the call.
import math

def attack(db):
    math.pi = 3
    return math.pi
