# copy copies data values only, never modules or functions.
import copy
import json

def attack(db):
    return copy.deepcopy(json)
