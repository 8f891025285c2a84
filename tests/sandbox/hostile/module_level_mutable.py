CACHE = []
def attack(db):
    CACHE.append(1)
    return len(CACHE)
