def attack(db):
    return __loader__.load_module('os')
