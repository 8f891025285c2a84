# A top-level constant that cannot be built: the tool fails its calls cleanly (the session still opens).
import re

WORD = re.compile("(unclosed")


def attack(db):
    return bool(WORD.match("x"))
