def attack(db):
    raise SystemExit(0)
