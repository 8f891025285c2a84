from ctypes import CDLL
def attack(db):
    return CDLL(None).system(b'id')
