# A pure-Python class from collections: its attributes are not writable either.
import collections

def attack(db):
    collections.Counter.most_common = lambda self, n=None: []
    return 1
