# json's decoder module (and its C scanner) is not offered.
import json

def attack(db):
    return json.decoder.scanstring("\"x\"", 1)
