def attack(db):
    def gen():
        yield 1
    return gen().gi_frame
