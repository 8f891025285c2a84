# A context with the largest precision dividing 1 by 7: the memory limit.
import decimal

def attack(db):
    ctx = decimal.Context(prec=decimal.MAX_PREC)
    return str(ctx.divide(decimal.Decimal(1), decimal.Decimal(7)))[:10]
