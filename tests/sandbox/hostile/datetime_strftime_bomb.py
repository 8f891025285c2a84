# A strftime format that expands to hundreds of MiB: the memory limit.
import datetime

def attack(db):
    return len(datetime.datetime.now().strftime("%Y-%m-%d" * (1 << 25)))
