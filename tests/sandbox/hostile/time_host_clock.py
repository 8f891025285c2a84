# The host's clocks (process time, the real monotonic clock) are not offered.
import time

def attack(db):
    return time.process_time()
