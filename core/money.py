"""Money rules: Decimal amounts, ISO 4217 minor units, ROUND_HALF_UP once at the line.

Minor units come from py-moneyed's ISO 4217 table (`sub_unit`: 100 for USD, 1 for JPY, 1000
for KWD), never from a table of our own.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache

import moneyed

from core.errors import ValidationError

MAX_DIGITS = 19
DECIMAL_PLACES = 4  # storage precision for unit prices; billed amounts are rounded to minor units

# ISO 4217 lists these codes with minor unit "N.A.": precious metals, bond-market units, SDR,
# the testing code and "no currency". py-moneyed gives them a placeholder sub_unit of 1, which
# would silently bill in gold as if it were yen; nobody is billed in them.
_NOT_BILLABLE = frozenset(
    {"XAG", "XAU", "XBA", "XBB", "XBC", "XBD", "XDR", "XPD", "XPT", "XSU", "XTS", "XUA", "XXX"}
)

# A plain decimal numeral: optional minus, digits, optional fraction. Decimal() alone would also
# take "1e3", "1_000", "+5", " NaN" and "Infinity", none of which is an amount a client means.
_DECIMAL_NUMERAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")


@lru_cache(maxsize=512)
def minor_units(currency: str) -> int:
    """Number of decimals of `currency` (USD 2, JPY 0, KWD 3, CLF 4)."""
    code = normalize_currency(currency)
    sub_unit = moneyed.get_currency(code).sub_unit
    # sub_unit is a power of ten (1, 100, 1000, 10000) for every billable ISO 4217 code.
    return len(str(sub_unit)) - 1


def normalize_currency(currency: str) -> str:
    code = (currency or "").strip().upper() if isinstance(currency, str) else ""
    try:
        moneyed.get_currency(code)
    except moneyed.CurrencyDoesNotExist:
        raise ValidationError(
            f"Unknown currency {currency!r}: use an ISO 4217 code such as USD.",
            code="invalid_currency",
            param="currency",
        ) from None
    if code in _NOT_BILLABLE:
        raise ValidationError(
            f"{code} is not a billable currency.", code="invalid_currency", param="currency"
        )
    return code


def is_valid_currency(currency: str) -> bool:
    try:
        normalize_currency(currency)
    except ValidationError:
        return False
    return True


@lru_cache(maxsize=512)
def quantum(currency: str) -> Decimal:
    """The currency's minor unit (USD 0.01, JPY 1); cached, as every rounding asks for it."""
    return Decimal(1).scaleb(-minor_units(currency))


def round_money(amount: Decimal | int | str, currency: str) -> Decimal:
    """Round to the currency's minor unit, half up (2.345 USD -> 2.35, 0.5 JPY -> 1)."""
    if isinstance(amount, float | bool):
        raise TypeError("money is never a float (or a bool)")
    rounded = Decimal(amount).quantize(quantum(currency), rounding=ROUND_HALF_UP)
    # -0.004 USD rounds to Decimal("-0.00"), which would print as "-0.00"; zero has no sign.
    return rounded.copy_abs() if rounded.is_zero() else rounded


def is_rounded(amount: Decimal, currency: str) -> bool:
    return amount == round_money(amount, currency)


def parse_decimal(value: object, *, param: str = "amount") -> Decimal:
    """Read a decimal numeral exactly: a string like "19.99" or "-3", an int, or a Decimal.

    Floats are refused: a JSON float may already be inexact (0.1 + 0.2), so amounts travel as
    strings.
    """
    if isinstance(value, bool | float) or not isinstance(value, str | int | Decimal):
        raise ValidationError(
            'Send amounts as decimal strings, for example "19.99".',
            code="invalid_amount",
            param=param,
        )
    if isinstance(value, str):
        text = value.strip()
        if not _DECIMAL_NUMERAL.fullmatch(text):
            raise ValidationError(
                f"{value!r} is not a decimal amount.", code="invalid_amount", param=param
            )
        value = text
    amount = Decimal(value)
    if not amount.is_finite():
        raise ValidationError("Amounts must be finite.", code="invalid_amount", param=param)
    return amount


def parse_amount(value: object, currency: str, *, param: str = "amount") -> Decimal:
    """Parse an incoming amount exactly; refuse more decimals than the currency has."""
    amount = parse_decimal(value, param=param)
    if not is_rounded(amount, currency):
        raise ValidationError(
            f"{normalize_currency(currency)} amounts have {minor_units(currency)} decimals "
            "at most.",
            code="invalid_amount",
            param=param,
        )
    return amount


def format_amount(amount: Decimal, currency: str) -> str:
    """The API's representation: a decimal string with exactly the currency's decimals."""
    # Fixed-point formatting: str() of a Decimal may use an exponent ("1E+3").
    return f"{round_money(amount, currency):f}"
