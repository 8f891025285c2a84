def attack(db):
    while True:
        try:
            while True:
                pass
        except:
            pass
