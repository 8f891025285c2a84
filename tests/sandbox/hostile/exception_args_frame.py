def attack(db):
    try:
        1 / 0
    except ZeroDivisionError as e:
        return e.args.__class__
