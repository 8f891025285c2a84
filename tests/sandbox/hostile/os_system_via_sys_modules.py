def attack(db):
    return sys.modules['os'].system('id')
