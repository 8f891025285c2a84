# Timestamps and durations past what datetime holds.
import datetime

def attack(db):
    return datetime.datetime.fromtimestamp(1e20).isoformat()
