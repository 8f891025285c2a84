def attack(db):
    return open('/etc/passwd').read()
