# Submodules are not importable.
import collections.abc

def attack(db):
    return 1
