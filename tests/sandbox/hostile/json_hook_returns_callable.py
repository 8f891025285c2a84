# A decoding hook that smuggles a callable out as the result.
import json

def attack(db):
    return json.loads("{\"a\": 1}", object_hook=lambda d: len)
