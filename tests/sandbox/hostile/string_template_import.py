# string.Template formats objects from text: not importable.
from string import Template

def attack(db):
    return Template("$x").substitute(x=len)
