# An unbounded deque filled from an endless iterator: the memory limit.
import collections
import itertools

def attack(db):
    return len(collections.deque(itertools.repeat(0)))
