# json.dumps of a huge structure: the result size limit.
import json

def attack(db):
    return json.dumps(["x" * 1000] * 20000)
