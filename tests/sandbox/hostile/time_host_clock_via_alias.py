# Host clocks through a name the check cannot follow: refused at run time.
import time

def attack(db):
    clocks = {"t": time}
    return clocks["t"].thread_time()
