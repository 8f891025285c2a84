# json.dumps of a structure bigger than a result may be: the result size limit.
import json

def attack(db):
    return json.dumps(["x" * 1000] * 2000)
