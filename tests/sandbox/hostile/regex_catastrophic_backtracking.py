# A regex that backtracks exponentially: the per-call timeout (the C matcher is killed by the watchdog).
import re

def attack(db):
    return bool(re.match(r"(a+)+$", "a" * 64 + "b"))
