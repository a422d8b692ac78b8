"""Money rules: ISO 4217 minor units and ROUND_HALF_UP per currency (core/money.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import ValidationError
from core.money import (
    format_amount,
    is_rounded,
    is_valid_currency,
    minor_units,
    normalize_currency,
    parse_amount,
    parse_decimal,
    quantum,
    round_money,
)

CURRENCIES = ["USD", "EUR", "JPY", "KWD", "BHD", "CLF", "GBP"]


@pytest.mark.parametrize(
    ("currency", "decimals"),
    [("JPY", 0), ("USD", 2), ("EUR", 2), ("KWD", 3), ("BHD", 3), ("CLF", 4), ("usd", 2)],
)
def test_minor_units_come_from_iso_4217(currency: str, decimals: int) -> None:
    assert minor_units(currency) == decimals
    assert quantum(currency) == Decimal(1).scaleb(-decimals)


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("2.345", "USD", "2.35"),
        ("2.344", "USD", "2.34"),
        ("-2.345", "USD", "-2.35"),
        ("-2.344", "USD", "-2.34"),
        ("2.355", "EUR", "2.36"),
        ("100.5", "JPY", "101"),
        ("100.4", "JPY", "100"),
        ("0.5", "JPY", "1"),
        ("1.2345", "KWD", "1.235"),
        ("1.2344", "KWD", "1.234"),
        ("0.0005", "BHD", "0.001"),
        ("7", "USD", "7.00"),
    ],
)
def test_round_money_is_half_up_at_the_currency_minor_unit(
    amount: str, currency: str, expected: str
) -> None:
    rounded = round_money(Decimal(amount), currency)

    assert rounded == Decimal(expected)
    assert str(rounded) == expected


def test_round_money_accepts_ints_and_strings_and_refuses_floats() -> None:
    assert round_money(3, "USD") == Decimal("3.00")
    assert round_money("2.345", "USD") == Decimal("2.35")
    with pytest.raises(TypeError, match="never a float"):
        round_money(2.345, "USD")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        round_money(True, "USD")


def test_a_negative_amount_that_rounds_to_zero_has_no_sign() -> None:
    assert str(round_money(Decimal("-0.004"), "USD")) == "0.00"
    assert format_amount(Decimal("-0.004"), "USD") == "0.00"
    assert format_amount(Decimal("-0.4"), "JPY") == "0"


def test_format_amount_has_exactly_the_currency_decimals_and_no_exponent() -> None:
    assert format_amount(Decimal("19.9"), "USD") == "19.90"
    assert format_amount(Decimal("1E+3"), "USD") == "1000.00"
    assert format_amount(Decimal("1E+3"), "JPY") == "1000"
    assert format_amount(Decimal("1.2345"), "KWD") == "1.235"


@pytest.mark.parametrize("currency", ["ABC", "", "US", "usdd", "XXX", "XAU", "XTS", None, 840])
def test_unknown_or_unbillable_currency_is_refused(currency: object) -> None:
    with pytest.raises(ValidationError) as caught:
        normalize_currency(currency)  # type: ignore[arg-type]

    assert caught.value.code == "invalid_currency"
    assert caught.value.param == "currency"
    assert is_valid_currency(currency) is False  # type: ignore[arg-type]


def test_real_currencies_normalize_to_their_code() -> None:
    assert normalize_currency(" eur ") == "EUR"
    assert normalize_currency("XOF") == "XOF"  # the West African CFA franc is a real currency
    assert is_valid_currency("jpy") is True


def test_minor_units_refuses_an_unknown_currency() -> None:
    with pytest.raises(ValidationError) as caught:
        minor_units("ZZZ")
    assert caught.value.code == "invalid_currency"


@pytest.mark.parametrize(
    ("value", "currency", "expected"),
    [
        ("19.99", "USD", Decimal("19.99")),
        (" 19.9 ", "USD", Decimal("19.9")),
        ("-5", "USD", Decimal("-5")),
        (1500, "JPY", Decimal(1500)),
        ("1.235", "KWD", Decimal("1.235")),
        (Decimal("2.50"), "EUR", Decimal("2.5")),
        ("2.500", "USD", Decimal("2.5")),  # trailing zeros are not extra precision
    ],
)
def test_parse_amount_reads_exact_decimals(value: object, currency: str, expected: Decimal) -> None:
    assert parse_amount(value, currency) == expected


@pytest.mark.parametrize(
    ("value", "currency"),
    [("19.999", "USD"), ("100.5", "JPY"), ("1.2345", "KWD"), ("0.001", "EUR")],
)
def test_parse_amount_refuses_more_decimals_than_the_currency_has(
    value: str, currency: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_amount(value, currency, param="unit_amount")

    assert caught.value.code == "invalid_amount"
    assert caught.value.param == "unit_amount"
    assert f"{minor_units(currency)} decimals" in caught.value.message


@pytest.mark.parametrize(
    "value",
    [
        0.1,
        19.99,
        True,
        None,
        "abc",
        "",
        "1e3",
        "1_000",
        "+5",
        "NaN",
        "Infinity",
        "1.",
        ".5",
        Decimal("NaN"),
        Decimal("Infinity"),
        ["1"],
    ],
)
def test_parse_amount_refuses_floats_and_anything_but_a_plain_decimal(value: object) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_amount(value, "USD")

    assert caught.value.code == "invalid_amount"
    assert caught.value.param == "amount"


def test_parse_decimal_keeps_every_digit() -> None:
    assert parse_decimal("0.00012345") == Decimal("0.00012345")
    assert parse_decimal("-12") == Decimal(-12)


amounts = st.decimals(
    min_value=Decimal("-1000000000"),
    max_value=Decimal("1000000000"),
    allow_nan=False,
    allow_infinity=False,
    places=6,
)


@given(amount=amounts, currency=st.sampled_from(CURRENCIES))
def test_rounding_is_idempotent_and_moves_at_most_half_a_minor_unit(
    amount: Decimal, currency: str
) -> None:
    rounded = round_money(amount, currency)

    assert round_money(rounded, currency) == rounded
    assert is_rounded(rounded, currency)
    assert abs(rounded - amount) <= quantum(currency) / 2
    # Half up: an exact half always moves away from zero.
    if abs(rounded - amount) == quantum(currency) / 2:
        assert abs(rounded) > abs(amount)
    assert -rounded == round_money(-amount, currency)  # symmetric around zero


@given(amount=amounts, currency=st.sampled_from(CURRENCIES))
def test_a_formatted_amount_parses_back_to_the_rounded_amount(
    amount: Decimal, currency: str
) -> None:
    text = format_amount(amount, currency)

    assert parse_amount(text, currency) == round_money(amount, currency)
    decimals = minor_units(currency)
    assert len(text.partition(".")[2]) == decimals
