# Objects the modules make refuse attribute writes too.
import decimal

def attack(db):
    ctx = decimal.Context()
    ctx.prec = 10 ** 9
    return str(ctx.divide(decimal.Decimal(1), decimal.Decimal(3)))
