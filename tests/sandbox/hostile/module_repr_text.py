# A module facade as text would be an object repr: refused.
import json

def attack(db):
    return str(json)
