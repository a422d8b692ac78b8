"""usage_amount: unit, graduated and volume pricing, exact and unrounded (a pure function)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from catalog.models import PlanMeter
from core.errors import ValidationError
from subscriptions.usage import usage_amount
from tests.subscriptions.usage_support import tiers

UNIT = PlanMeter.Pricing.UNIT
GRADUATED = PlanMeter.Pricing.GRADUATED
VOLUME = PlanMeter.Pricing.VOLUME

# 0-100 at 0.10, 101-1000 at 0.08, above at 0.05.
THREE_TIERS = tiers(("100", "0.10"), ("1000", "0.08"), (None, "0.05"))
# The same with flat fees of 5, 10 and 20.
THREE_TIERS_FLAT = tiers(("100", "0.10", "5"), ("1000", "0.08", "10"), (None, "0.05", "20"))


def _amount(quantity: str, pricing: str, tier_specs: list) -> Decimal:
    return usage_amount(quantity=Decimal(quantity), pricing=pricing, tiers=tier_specs)


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [("1500", "150.00"), ("1", "0.10"), ("0", "0"), ("2.5", "0.25")],
)
def test_unit_pricing_is_quantity_times_the_unit_price(quantity: str, expected: str) -> None:
    assert _amount(quantity, UNIT, tiers((None, "0.10"))) == Decimal(expected)


def test_unit_pricing_adds_its_flat_amount_when_there_is_usage() -> None:
    assert _amount("1500", UNIT, tiers((None, "0.10", "2.00"))) == Decimal("152.00")
    assert _amount("0", UNIT, tiers((None, "0.10", "2.00"))) == Decimal("0")


def test_the_amount_is_not_rounded() -> None:
    # 3 x 0.0025 = 0.0075: billing rounds it once, at the invoice line (to 0.01 USD).
    assert _amount("3", UNIT, tiers((None, "0.0025"))) == Decimal("0.0075")
    assert _amount("7", GRADUATED, tiers(("5", "0.0033"), (None, "0.0011"))) == Decimal("0.0187")


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        ("1500", "107.00"),  # 100 x 0.10 + 900 x 0.08 + 500 x 0.05 = 10 + 72 + 25
        ("1000", "82.00"),  # 10 + 72
        ("101", "10.08"),  # 10 + 1 x 0.08
        ("100", "10.00"),  # the limit is inclusive
        ("50", "5.00"),
        ("100.5", "10.04"),  # 10 + 0.5 x 0.08
        ("0", "0"),
    ],
)
def test_graduated_pricing_prices_each_tier_at_its_own_rate(quantity: str, expected: str) -> None:
    assert _amount(quantity, GRADUATED, THREE_TIERS) == Decimal(expected)


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        ("1500", "142.00"),  # 107 + 5 + 10 + 20
        ("100", "15.00"),  # 10 + 5: the second tier is not reached
        ("101", "25.08"),  # 10 + 5 + 0.08 + 10
        ("1", "5.10"),
        ("0", "0"),  # no usage: not even the first tier's flat fee
    ],
)
def test_graduated_pricing_adds_the_flat_amount_of_each_reached_tier(
    quantity: str, expected: str
) -> None:
    assert _amount(quantity, GRADUATED, THREE_TIERS_FLAT) == Decimal(expected)


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        ("1500", "75.00"),  # all 1500 at 0.05
        ("1000", "80.00"),  # all at 0.08: 1000 is in the second tier (inclusive)
        ("101", "8.08"),
        ("100", "10.00"),
        ("1", "0.10"),
        ("0", "0"),
    ],
)
def test_volume_pricing_prices_every_unit_at_the_reached_tier(quantity: str, expected: str) -> None:
    assert _amount(quantity, VOLUME, THREE_TIERS) == Decimal(expected)


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        ("1500", "95.00"),  # 75 + the third tier's 20
        ("1000", "90.00"),  # 80 + 10
        ("1", "5.10"),  # 0.10 + 5: the first tier's flat applies once there is usage
        ("0", "0"),
    ],
)
def test_volume_pricing_adds_only_the_reached_tiers_flat_amount(
    quantity: str, expected: str
) -> None:
    assert _amount(quantity, VOLUME, THREE_TIERS_FLAT) == Decimal(expected)


def test_tiers_may_come_in_any_order() -> None:
    shuffled = [THREE_TIERS[2], THREE_TIERS[0], THREE_TIERS[1]]

    assert _amount("1500", GRADUATED, shuffled) == Decimal("107.00")
    assert _amount("1500", VOLUME, shuffled) == Decimal("75.00")


def test_a_price_without_tiers_is_refused_once_there_is_usage() -> None:
    with pytest.raises(ValidationError) as error:
        _amount("3", UNIT, [])

    assert error.value.code == "tiers_required"
    assert _amount("0", UNIT, []) == Decimal("0")
