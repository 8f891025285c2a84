def attack(db):
    return __builtins__['open']('/etc/passwd').read()
