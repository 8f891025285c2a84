# A defaultdict shows its factory as text: a lambda's address, refused.
import collections

def attack(db):
    counts = collections.defaultdict(lambda: 0)
    counts["a"] += 1
    return f"{counts}"
