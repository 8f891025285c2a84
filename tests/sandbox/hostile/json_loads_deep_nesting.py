# Deeply nested JSON: a RecursionError, not a crash.
import json

def attack(db):
    return json.loads("[" * 200000 + "]" * 200000)
