# A replacement callback gets match objects; their pattern still has no scanner.
import re

def attack(db):
    return re.sub("a", lambda m: m.re.scanner(m.string).search().group(), "abc")
