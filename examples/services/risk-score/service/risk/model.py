"""A points-based credit risk model, in exact decimal arithmetic.

Each factor adds or removes points from a base of 600; the total is clamped
to 0..1000 and mapped to a grade. Every factor that moved the score is
reported so the applicant can be told why.
"""
from decimal import Decimal, ROUND_HALF_EVEN

BASE = 600
GRADES = [(800, "A"), (700, "B"), (600, "C"), (500, "D"), (0, "E")]


def _money(value):
    d = Decimal(str(value))
    if d < 0:
        raise ValueError("amounts must not be negative")
    return d


def score(applicant):
    income = _money(applicant["annual_income"])
    debt = _money(applicant["monthly_debt_payments"])
    limit = _money(applicant.get("credit_limit", 0))
    balance = _money(applicant.get("credit_balance", 0))
    late = int(applicant.get("late_payments_24m", 0))
    years = int(applicant.get("years_of_history", 0))
    defaults = int(applicant.get("defaults", 0))

    points = BASE
    factors = []

    monthly_income = income / 12 if income > 0 else Decimal(0)
    if monthly_income == 0:
        dti = Decimal(1)
    else:
        dti = (debt / monthly_income).quantize(Decimal("0.0001"), ROUND_HALF_EVEN)
    if dti <= Decimal("0.20"):
        points += 120
        factors.append("low debt-to-income")
    elif dti <= Decimal("0.36"):
        points += 40
    elif dti <= Decimal("0.50"):
        points -= 80
        factors.append("high debt-to-income")
    else:
        points -= 200
        factors.append("very high debt-to-income")

    if limit > 0:
        util = (balance / limit).quantize(Decimal("0.0001"), ROUND_HALF_EVEN)
        if util < Decimal("0.10"):
            points += 80
            factors.append("low credit utilisation")
        elif util < Decimal("0.30"):
            points += 40
        elif util > Decimal("0.75"):
            points -= 100
            factors.append("credit nearly maxed out")
    else:
        util = None

    points -= 45 * min(late, 6)
    if late:
        factors.append("%d late payment(s) in 24 months" % late)
    points -= 250 * min(defaults, 2)
    if defaults:
        factors.append("%d default(s)" % defaults)
    points += 12 * min(years, 15)
    if years >= 10:
        factors.append("long credit history")

    points = max(0, min(1000, points))
    grade = next(g for floor, g in GRADES if points >= floor)
    return {
        "id": applicant.get("id"),
        "score": points,
        "grade": grade,
        "debt_to_income": str(dti),
        "utilisation": None if util is None else str(util),
        "factors": factors,
    }
