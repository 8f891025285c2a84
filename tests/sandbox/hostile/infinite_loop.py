def attack(db):
    n = 0
    while True:
        n = n + 1
