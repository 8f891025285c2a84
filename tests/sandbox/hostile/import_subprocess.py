def attack(db):
    import subprocess
    return subprocess.check_output(['id']).decode()
