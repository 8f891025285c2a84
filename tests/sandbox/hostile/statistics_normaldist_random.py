# NormalDist.samples draws from random (not deterministic): not offered.
import statistics

def attack(db):
    return statistics.NormalDist(0, 1).samples(3)
