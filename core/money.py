"""Money rules: Decimal amounts, ISO 4217 minor units, ROUND_HALF_UP once at the line.

Minor units come from py-moneyed's ISO 4217 table (`sub_unit`: 100 for USD, 1 for JPY, 1000
for KWD), never from a table of our own.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache

import moneyed

from core.errors import ValidationError

MAX_DIGITS = 19
DECIMAL_PLACES = 4  # storage precision for unit prices; billed amounts are rounded to minor units


@lru_cache(maxsize=512)
def minor_units(currency: str) -> int:
    """Number of decimals of `currency` (USD 2, JPY 0, KWD 3)."""
    code = normalize_currency(currency)
    sub_unit = moneyed.get_currency(code).sub_unit
    return len(str(sub_unit)) - 1


def normalize_currency(currency: str) -> str:
    code = (currency or "").strip().upper()
    try:
        moneyed.get_currency(code)
    except moneyed.CurrencyDoesNotExist:
        raise ValidationError(
            f"Unknown currency {currency!r}: use an ISO 4217 code such as USD.",
            code="invalid_currency",
            param="currency",
        ) from None
    if code == "XXX":
        raise ValidationError("XXX is not a billable currency.", code="invalid_currency")
    return code


def is_valid_currency(currency: str) -> bool:
    try:
        normalize_currency(currency)
    except ValidationError:
        return False
    return True


def quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-minor_units(currency))


def round_money(amount: Decimal | int | str, currency: str) -> Decimal:
    """Round to the currency's minor unit, half up (2.345 USD -> 2.35, 0.5 JPY -> 1)."""
    if isinstance(amount, float):
        raise TypeError("money is never a float")
    return Decimal(amount).quantize(quantum(currency), rounding=ROUND_HALF_UP)


def is_rounded(amount: Decimal, currency: str) -> bool:
    return amount == round_money(amount, currency)


def parse_amount(value: object, currency: str, *, param: str = "amount") -> Decimal:
    """Parse an incoming amount string exactly; refuse more decimals than the currency has."""
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ValidationError(
            f"{value!r} is not a decimal amount.", code="invalid_amount", param=param
        ) from None
    if not amount.is_finite():
        raise ValidationError("Amounts must be finite.", code="invalid_amount", param=param)
    if not is_rounded(amount, currency):
        raise ValidationError(
            f"{currency} amounts have {minor_units(currency)} decimals at most.",
            code="invalid_amount",
            param=param,
        )
    return amount


def format_amount(amount: Decimal, currency: str) -> str:
    """The API's representation: a decimal string with exactly the currency's decimals."""
    return str(round_money(amount, currency))
