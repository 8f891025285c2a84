# Reading the clock at load time would freeze whatever reading the worker last had: refused.
import datetime

STARTED = datetime.datetime.now()


def attack(db):
    return STARTED.isoformat()
