# json.loads(cls=...) would construct an arbitrary class: only data options are taken.
import json

def attack(db):
    return json.loads("{}", cls=dict)
