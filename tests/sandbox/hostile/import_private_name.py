# Private names of an allowed module are not importable.
from json import _default_encoder

def attack(db):
    return 1
