# Relative imports are refused.
from . import secrets

def attack(db):
    return 1
