def attack(db):
    handler = lambda: 0
    return {"leak": "%s" % (handler,)}
