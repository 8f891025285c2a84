# A product that cannot fit: the memory limit.
import itertools

def attack(db):
    return len(list(itertools.product(range(10), repeat=12)))
