# re.DEBUG prints the compiled pattern (to the worker stdout): not offered.
import re

def attack(db):
    return re.compile("a+", re.DEBUG).pattern
