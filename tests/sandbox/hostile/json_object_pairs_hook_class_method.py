# A hook reaching a class method of a builtin type.
import json

def attack(db):
    return json.loads("{\"a\": 1}", object_pairs_hook=dict.fromkeys)
