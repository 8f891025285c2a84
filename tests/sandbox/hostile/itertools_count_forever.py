# Summing an endless iterator in C: the per-call timeout.
import itertools

def attack(db):
    return sum(itertools.count())
