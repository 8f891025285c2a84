def helper(db):
    return 1
def attack(db):
    return helper(db)
