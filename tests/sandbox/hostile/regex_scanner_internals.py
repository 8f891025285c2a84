# The pattern scanner (an undocumented internal object) is not offered.
import re

def attack(db):
    return re.compile("a").scanner("aaa").match().group()
