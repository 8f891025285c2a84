def attack(db):
    chunks = []
    while True:
        chunks.append('x' * (10 ** 7))
