"""The catalog's rules that PostgreSQL itself enforces, whatever code writes the rows.

Each test writes a bad row past the services (bulk_create, queryset update or raw SQL) and
expects the database to refuse it, naming the constraint that did.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction

from catalog.models import (
    Bundle,
    Coupon,
    CouponAmount,
    Meter,
    MeterPrice,
    MeterPriceTier,
    Plan,
    PlanMeter,
    PlanPhase,
    Price,
    PriceList,
    Product,
    PromotionCode,
    TaxRate,
)

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def _refused(write: Callable[[], Any]) -> str:
    """Run `write`, expect the database to refuse it; return the refusing constraint's name."""
    with pytest.raises(IntegrityError) as error, transaction.atomic():
        write()
    diag = error.value.__cause__.diag  # type: ignore[union-attr]
    return str(diag.constraint_name or diag.message_primary)


def _product(code: str = "news") -> Product:
    return Product.objects.create(code=code, name=code, created_at=NOW)


def _plan(code: str = "monthly") -> Plan:
    return Plan.objects.create(
        product=_product(f"{code}-product"),
        code=code,
        name=code,
        billing_interval="month",
        created_at=NOW,
    )


def _default_list() -> PriceList:
    return PriceList.objects.create(code="default", name="Default", kind="default", created_at=NOW)


def _phase(plan: Plan | None = None) -> PlanPhase:
    return PlanPhase.objects.create(plan=plan or _plan(), sequence=1, kind="evergreen")


def _price(phase: PlanPhase, price_list: PriceList, **overrides: Any) -> Price:
    fields: dict[str, Any] = {
        "phase": phase,
        "price_list": price_list,
        "currency": "USD",
        "amount": Decimal("9.99"),
        "effective_from": date(2026, 1, 15),
        "created_at": NOW,
    } | overrides
    return Price(**fields)


def _coupon(**overrides: Any) -> Coupon:
    fields: dict[str, Any] = {
        "code": "welcome",
        "name": "Welcome",
        "discount_type": "percent",
        "percent_off": Decimal("10"),
        "duration": "once",
        "created_at": NOW,
    } | overrides
    return Coupon(**fields)


def test_negative_price_is_refused() -> None:
    phase, price_list = _phase(), _default_list()

    refused = _refused(
        lambda: Price.objects.bulk_create([_price(phase, price_list, amount=Decimal("-0.01"))])
    )

    assert refused == "price_amount_not_negative"
    assert not Price.objects.exists()


def test_negative_setup_fee_is_refused() -> None:
    phase, price_list = _phase(), _default_list()

    refused = _refused(
        lambda: Price.objects.bulk_create([_price(phase, price_list, setup_fee=Decimal("-1"))])
    )

    assert refused == "price_setup_fee_not_negative"


@pytest.mark.parametrize("currency", ["usd", "US", "US1"])
def test_currency_must_be_three_capital_letters(currency: str) -> None:
    phase, price_list = _phase(), _default_list()

    refused = _refused(
        lambda: Price.objects.bulk_create([_price(phase, price_list, currency=currency)])
    )

    assert refused == "price_currency_iso"


def test_coupon_amount_currency_format_and_positive_amount() -> None:
    coupon = _coupon(discount_type="fixed", percent_off=None)
    coupon.save()

    bad_currency = _refused(
        lambda: CouponAmount.objects.bulk_create(
            [CouponAmount(coupon=coupon, currency="eur", amount_off=Decimal("1"))]
        )
    )
    zero = _refused(
        lambda: CouponAmount.objects.bulk_create(
            [CouponAmount(coupon=coupon, currency="EUR", amount_off=Decimal("0"))]
        )
    )

    assert (bad_currency, zero) == ("coupon_amount_currency_iso", "coupon_amount_positive")


def test_duplicate_product_code_is_refused() -> None:
    _product("news")

    with pytest.raises(IntegrityError), transaction.atomic():
        Product.objects.bulk_create([Product(code="news", name="Again", created_at=NOW)])

    assert Product.objects.count() == 1


def test_same_price_version_twice_is_refused() -> None:
    phase, price_list = _phase(), _default_list()
    Price.objects.bulk_create([_price(phase, price_list)])

    refused = _refused(
        lambda: Price.objects.bulk_create([_price(phase, price_list, amount=Decimal("12"))])
    )

    assert refused == "price_version_unique"
    assert list(Price.objects.values_list("amount", flat=True)) == [Decimal("9.99")]


def test_a_price_row_is_never_updated() -> None:
    phase, price_list = _phase(), _default_list()
    price = _price(phase, price_list)
    price.save()

    with pytest.raises(IntegrityError) as error, transaction.atomic():
        Price.objects.filter(pk=price.pk).update(amount=Decimal("1.00"))

    assert "immutable" in str(error.value)
    price.refresh_from_db()
    assert price.amount == Decimal("9.99")


def test_meter_price_and_tiers_are_never_updated() -> None:
    price_list = _default_list()
    meter = Meter.objects.create(code="calls", name="Calls", aggregation="count", created_at=NOW)
    plan_meter = PlanMeter.objects.create(plan=_plan(), meter=meter, pricing="unit")
    meter_price = MeterPrice.objects.create(
        plan_meter=plan_meter,
        price_list=price_list,
        currency="USD",
        effective_from=date(2026, 1, 15),
        created_at=NOW,
    )
    tier = MeterPriceTier.objects.create(price=meter_price, unit_amount=Decimal("0.01"))

    with pytest.raises(IntegrityError), transaction.atomic():
        MeterPriceTier.objects.filter(pk=tier.pk).update(unit_amount=Decimal("0.02"))
    with pytest.raises(IntegrityError), transaction.atomic():
        MeterPrice.objects.filter(pk=meter_price.pk).update(currency="EUR")

    tier.refresh_from_db()
    assert tier.unit_amount == Decimal("0.01")


def test_second_default_price_list_is_refused() -> None:
    _default_list()

    refused = _refused(
        lambda: PriceList.objects.bulk_create(
            [PriceList(code="other", name="Other", kind="default", created_at=NOW)]
        )
    )

    assert refused == "price_list_one_default"


def test_geography_list_needs_countries_and_segment_list_a_segment() -> None:
    geography = _refused(
        lambda: PriceList.objects.create(code="eu", name="EU", kind="geography", created_at=NOW)
    )
    segment = _refused(
        lambda: PriceList.objects.create(code="edu", name="Edu", kind="segment", created_at=NOW)
    )

    assert (geography, segment) == (
        "price_list_geography_has_countries",
        "price_list_segment_has_segment",
    )


@pytest.mark.parametrize("percent", [Decimal("100.001"), Decimal("150"), Decimal("0"), None])
def test_percent_coupon_outside_0_to_100_is_refused(percent: Decimal | None) -> None:
    refused = _refused(lambda: Coupon.objects.bulk_create([_coupon(percent_off=percent)]))

    assert refused == "coupon_discount_consistent"


def test_fixed_coupon_with_a_percentage_is_refused() -> None:
    refused = _refused(lambda: Coupon.objects.bulk_create([_coupon(discount_type="fixed")]))

    assert refused == "coupon_discount_consistent"


def test_repeating_coupon_without_cycles_is_refused() -> None:
    refused = _refused(lambda: Coupon.objects.bulk_create([_coupon(duration="repeating")]))

    assert refused == "coupon_duration_cycles_consistent"


def test_forever_coupon_with_cycles_is_refused() -> None:
    refused = _refused(
        lambda: Coupon.objects.bulk_create([_coupon(duration="forever", duration_cycles=3)])
    )

    assert refused == "coupon_duration_cycles_consistent"


def test_coupon_redeemed_beyond_its_maximum_is_refused() -> None:
    coupon = _coupon(max_redemptions=1, times_redeemed=1)
    coupon.save()

    refused = _refused(lambda: Coupon.objects.filter(pk=coupon.pk).update(times_redeemed=2))

    assert refused == "coupon_redemptions_within_max"


def test_promotion_code_must_be_uppercase_and_within_its_maximum() -> None:
    coupon = _coupon()
    coupon.save()

    lowercase = _refused(
        lambda: PromotionCode.objects.bulk_create(
            [PromotionCode(coupon=coupon, code="spring25", created_at=NOW)]
        )
    )
    zero_max = _refused(
        lambda: PromotionCode.objects.bulk_create(
            [PromotionCode(coupon=coupon, code="SPRING25", max_redemptions=0, created_at=NOW)]
        )
    )

    assert (lowercase, zero_max) == (
        "promotion_code_upper_alnum",
        "promotion_code_max_redemptions_min_1",
    )


def test_second_active_tax_rate_for_the_same_place_is_refused() -> None:
    TaxRate.objects.create(
        name="CA", country="US", region="CA", percentage=Decimal("7.25"), created_at=NOW
    )
    TaxRate.objects.create(
        name="CA old", country="US", region="CA", percentage=7, active=False, created_at=NOW
    )
    TaxRate.objects.create(name="US", country="US", percentage=Decimal("0"), created_at=NOW)

    refused = _refused(
        lambda: TaxRate.objects.bulk_create(
            [TaxRate(name="CA 2", country="US", region="CA", percentage=8, created_at=NOW)]
        )
    )

    assert refused == "tax_rate_one_active_per_place"
    assert TaxRate.objects.filter(active=True).count() == 2


@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        ({"country": "us"}, "tax_rate_country_iso"),
        ({"region": "us-ca"}, "tax_rate_region_iso"),
        ({"percentage": Decimal("100.5")}, "tax_rate_percentage_range"),
        ({"percentage": Decimal("-1")}, "tax_rate_percentage_range"),
    ],
)
def test_tax_rate_place_and_percentage_formats(fields: dict[str, Any], constraint: str) -> None:
    values: dict[str, Any] = {
        "name": "T",
        "country": "US",
        "percentage": Decimal("5"),
        "created_at": NOW,
    } | fields

    assert _refused(lambda: TaxRate.objects.bulk_create([TaxRate(**values)])) == constraint


@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        (
            {"kind": "evergreen", "duration_unit": "month", "duration_count": 12},
            "plan_phase_duration_matches_kind",
        ),
        (
            {"kind": "trial", "duration_unit": "", "duration_count": None},
            "plan_phase_duration_matches_kind",
        ),
        (
            {"kind": "trial", "duration_unit": "day", "duration_count": 0},
            "plan_phase_duration_matches_kind",
        ),
        (
            {"kind": "trial", "duration_unit": "day", "duration_count": None},
            "plan_phase_duration_matches_kind",
        ),
        (
            {"kind": "discount", "duration_unit": "month", "duration_count": 1, "renews": True},
            "plan_phase_only_fixed_term_renews",
        ),
    ],
)
def test_phase_duration_matches_its_kind(fields: dict[str, Any], constraint: str) -> None:
    plan = _plan()

    refused = _refused(
        lambda: PlanPhase.objects.bulk_create([PlanPhase(plan=plan, sequence=1, **fields)])
    )

    assert refused == constraint


def test_two_phases_with_the_same_sequence_are_refused() -> None:
    phase = _phase()

    refused = _refused(
        lambda: PlanPhase.objects.bulk_create(
            [PlanPhase(plan=phase.plan, sequence=1, kind="evergreen")]
        )
    )

    assert refused == "plan_phase_sequence_unique"


@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        ({"billing_interval": "biweekly"}, "plan_billing_interval_valid"),
        ({"interval_count": 0}, "plan_interval_count_min_1"),
        ({"billing_day": 32}, "plan_billing_day_in_month"),
        ({"min_quantity": 3, "max_quantity": 2}, "plan_max_quantity_gte_min"),
    ],
)
def test_plan_interval_and_quantities(fields: dict[str, Any], constraint: str) -> None:
    product = _product()
    values: dict[str, Any] = {
        "product": product,
        "code": "p",
        "name": "P",
        "billing_interval": "month",
        "created_at": NOW,
    } | fields

    assert _refused(lambda: Plan.objects.bulk_create([Plan(**values)])) == constraint


@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        (
            {"pricing": "fixed_price", "discount_percent": Decimal("10")},
            "bundle_pricing_consistent",
        ),
        ({"pricing": "percent_discount", "discount_percent": None}, "bundle_pricing_consistent"),
        (
            {"pricing": "percent_discount", "discount_percent": Decimal("101")},
            "bundle_pricing_consistent",
        ),
    ],
)
def test_bundle_pricing_is_consistent(fields: dict[str, Any], constraint: str) -> None:
    refused = _refused(
        lambda: Bundle.objects.bulk_create([Bundle(code="b", name="B", created_at=NOW, **fields)])
    )

    assert refused == constraint


def test_metered_tiers_limits_and_amounts() -> None:
    price_list = _default_list()
    meter = Meter.objects.create(code="calls", name="Calls", aggregation="count", created_at=NOW)
    plan_meter = PlanMeter.objects.create(plan=_plan(), meter=meter, pricing="graduated")
    price = MeterPrice.objects.create(
        plan_meter=plan_meter,
        price_list=price_list,
        currency="USD",
        effective_from=date(2026, 1, 15),
        created_at=NOW,
    )
    MeterPriceTier.objects.create(price=price, up_to=None)

    second_unlimited = _refused(
        lambda: MeterPriceTier.objects.bulk_create([MeterPriceTier(price=price, up_to=None)])
    )
    zero_limit = _refused(
        lambda: MeterPriceTier.objects.bulk_create([MeterPriceTier(price=price, up_to=0)])
    )
    negative = _refused(
        lambda: MeterPriceTier.objects.bulk_create(
            [MeterPriceTier(price=price, up_to=10, unit_amount=Decimal("-0.01"))]
        )
    )

    assert (second_unlimited, zero_limit, negative) == (
        "meter_price_tier_unique",
        "meter_tier_up_to_positive",
        "meter_tier_unit_not_negative",
    )


def test_meter_other_than_count_names_its_field() -> None:
    refused = _refused(
        lambda: Meter.objects.bulk_create(
            [Meter(code="gb", name="GB", aggregation="sum", field_name="", created_at=NOW)]
        )
    )

    assert refused == "meter_field_required_unless_count"


def test_raw_sql_cannot_bypass_the_price_rules() -> None:
    phase, price_list = _phase(), _default_list()

    def insert_negative() -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO catalog_price (phase_id, price_list_id, currency, amount, setup_fee,"
                " effective_from, created_at) VALUES (%s, %s, 'USD', -5, 0, '2026-01-15', now())",
                [phase.pk, price_list.pk],
            )

    assert _refused(insert_negative) == "price_amount_not_negative"
