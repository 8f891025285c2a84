# A power with the widest context: memory or time, either way contained.
import decimal

def attack(db):
    ctx = decimal.Context(prec=decimal.MAX_PREC, Emax=decimal.MAX_EMAX)
    return str(ctx.power(decimal.Decimal(7), decimal.Decimal(10 ** 12)))[:10]
