def attack(db):
    raise KeyboardInterrupt()
