def attack(db):
    return '{x.__class__}'.format_map({'x': db})
