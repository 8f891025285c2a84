# default=str on a function would print its address: refused like str(function).
import json

def attack(db):
    return json.dumps({"f": len}, default=str)
