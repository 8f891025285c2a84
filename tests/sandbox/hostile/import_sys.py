# Only the allowed standard modules can be imported.
import sys

def attack(db):
    return sys.modules["os"].getpid()
