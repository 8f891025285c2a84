def attack(db):
    handler = lambda: 0
    return {"leak": f"{handler}"}
