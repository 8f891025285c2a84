def attack(db):
    def f():
        return 1
    return f.__globals__
