# string.Formatter walks attributes from text ({0.__class__}): not offered.
import string

def attack(db):
    return string.Formatter().vformat("{0.__class__.__mro__}", [db], {})
