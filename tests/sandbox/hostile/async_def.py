async def attack(db):
    return 1
