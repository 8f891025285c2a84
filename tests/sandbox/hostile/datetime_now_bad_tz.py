# now(tz) with something that is not a tzinfo.
import datetime

def attack(db):
    return datetime.datetime.now(len).isoformat()
