def attack(db):
    return {"leak": str(map(len, ["a"]))}
