def attack(db):
    return __import__('os').system('id')
