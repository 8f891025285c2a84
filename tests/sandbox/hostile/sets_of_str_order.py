def attack(db):
    return sorted({'b', 'a'}) + [repr(db)]
