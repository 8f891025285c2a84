# namedtuple compiles code (exec): not offered.
import collections

def attack(db):
    return collections.namedtuple("P", "x y")(1, 2)[0]
