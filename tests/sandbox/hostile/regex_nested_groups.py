# A pattern nested deeper than the recursion limit allows to parse.
import re

def attack(db):
    return re.compile("(" * 5000 + "a" + ")" * 5000).pattern
