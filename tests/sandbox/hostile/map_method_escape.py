def attack(db):
    return list(map(str.format, ['{0.__class__}'], [db]))
