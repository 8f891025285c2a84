# The same Formatter escape through a name the check cannot follow: refused at run time.
import string

def attack(db):
    mod = [string][0]
    return mod.Formatter().vformat("{0.__class__.__mro__}", [db], {})
