"""Aggregation over a period, the usage lines handed to billing, and the usage summary."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from billing.services import LineSpec
from catalog.models import Meter, PlanMeter, PriceList
from catalog.services import price_list_create
from core import services as core_services
from core.actors import SYSTEM
from core.errors import ValidationError
from subscriptions.models import Subscription, UsageEvent
from subscriptions.usage import (
    usage_aggregate,
    usage_event_record,
    usage_line_specs,
    usage_summary,
)
from tests.subscriptions.usage_support import (
    FEB_1,
    JAN_1,
    NOW,
    Catalog,
    MeteredCharge,
    at,
    make_customer,
    make_subscription,
    tiers,
)

pytestmark = pytest.mark.django_db

# The catalog is priced before the subscriptions start; usage is recorded after the period.
CATALOG_DAY = at(date(2025, 12, 1))
AFTER_JANUARY = at(date(2026, 2, 3), 12)
GRADUATED_USD = tiers(("100", "0.10"), ("1000", "0.08"), (None, "0.05"))


@pytest.fixture
def shop(clock: Any) -> Catalog:
    clock(CATALOG_DAY)
    return Catalog()


def _record(subscription: Subscription, meter: Meter, moment: Any, **properties: Any) -> None:
    core_services.test_clock_set(to=AFTER_JANUARY)
    usage_event_record(
        customer=subscription.customer,
        meter_code=meter.code,
        event_id=f"e-{UsageEvent.objects.count() + 1}",
        occurred_at=moment,
        properties=properties,
        subscription=subscription,
        actor=SYSTEM,
    )


def _metered(shop: Catalog, meter: Meter, pricing: str = PlanMeter.Pricing.UNIT) -> Subscription:
    plan = shop.plan(
        f"plan-{meter.code}",
        charges=[MeteredCharge(meter, pricing, [("USD", tiers((None, "0.01")))])],
    )
    return make_subscription(make_customer(), plan)


# --- aggregation --------------------------------------------------------------------------------


def test_count_counts_the_events_of_the_period(shop: Catalog) -> None:
    calls = shop.meter("calls", Meter.Aggregation.COUNT)
    subscription = _metered(shop, calls)
    for day in (1, 5, 5, 31):
        _record(subscription, calls, at(date(2026, 1, day), 10))

    total = usage_aggregate(
        subscription=subscription, meter=calls, period_start=JAN_1, period_end=FEB_1
    )

    assert total == Decimal(4)


def test_sum_adds_the_property_exactly(shop: Catalog) -> None:
    tokens = shop.meter("tokens", Meter.Aggregation.SUM, "tokens")
    subscription = _metered(shop, tokens)
    for index, value in enumerate(["0.1", "0.2", 7, "1200.0005"]):
        _record(subscription, tokens, at(date(2026, 1, 2 + index)), tokens=value)

    total = usage_aggregate(
        subscription=subscription, meter=tokens, period_start=JAN_1, period_end=FEB_1
    )

    assert total == Decimal("1207.3005")


def test_max_takes_the_highest_value(shop: Catalog) -> None:
    storage = shop.meter("storage", Meter.Aggregation.MAX, "gb")
    subscription = _metered(shop, storage)
    for index, value in enumerate([12, "99.5", "9", 40]):
        _record(subscription, storage, at(date(2026, 1, 2 + index)), gb=value)

    total = usage_aggregate(
        subscription=subscription, meter=storage, period_start=JAN_1, period_end=FEB_1
    )

    assert total == Decimal("99.5")  # compared as numbers: "9" is not above "99.5"


def test_unique_count_counts_distinct_values_of_a_nested_property(shop: Catalog) -> None:
    users = shop.meter("users", Meter.Aggregation.UNIQUE_COUNT, "user.id")
    subscription = _metered(shop, users)
    for index, user in enumerate(["ann", "bob", "ann", "cy", "bob"]):
        _record(subscription, users, at(date(2026, 1, 2 + index)), user={"id": user})

    total = usage_aggregate(
        subscription=subscription, meter=users, period_start=JAN_1, period_end=FEB_1
    )

    assert total == Decimal(3)


def test_a_period_without_events_totals_zero(shop: Catalog) -> None:
    for aggregation, field in [("count", ""), ("sum", "n"), ("max", "n"), ("unique_count", "n")]:
        meter = shop.meter(f"m-{aggregation}".replace("_", "-"), aggregation, field)
        subscription = _metered(shop, meter)

        total = usage_aggregate(
            subscription=subscription, meter=meter, period_start=JAN_1, period_end=FEB_1
        )

        assert total == Decimal(0)


def test_the_period_runs_from_its_first_midnight_to_the_last_midnight_excluded(
    shop: Catalog,
) -> None:
    tokens = shop.meter("tokens", Meter.Aggregation.SUM, "tokens")
    subscription = _metered(shop, tokens)
    Subscription.objects.filter(pk=subscription.pk).update(start_on=date(2025, 12, 1))
    subscription.refresh_from_db()
    _record(subscription, tokens, at(date(2025, 12, 31), 23, 59, 59, 999999), tokens=1)
    _record(subscription, tokens, at(JAN_1), tokens=10)
    _record(subscription, tokens, at(date(2026, 1, 31), 23, 59, 59), tokens=100)
    _record(subscription, tokens, at(date(2026, 1, 31), 23, 59, 59, 999999), tokens=1000)
    _record(subscription, tokens, at(FEB_1), tokens=10000)

    total = usage_aggregate(
        subscription=subscription, meter=tokens, period_start=JAN_1, period_end=FEB_1
    )

    assert total == Decimal(1110)


def test_aggregation_keeps_to_its_subscription_and_meter(shop: Catalog) -> None:
    tokens = shop.meter("tokens", Meter.Aggregation.SUM, "tokens")
    images = shop.meter("images", Meter.Aggregation.SUM, "tokens")
    plan = shop.plan(
        "both",
        charges=[
            MeteredCharge(tokens, "unit", [("USD", tiers((None, "1")))]),
            MeteredCharge(images, "unit", [("USD", tiers((None, "1")))]),
        ],
    )
    mine = make_subscription(make_customer(), plan)
    theirs = make_subscription(make_customer(), plan)
    _record(mine, tokens, at(date(2026, 1, 3)), tokens=5)
    _record(mine, images, at(date(2026, 1, 3)), tokens=50)
    _record(theirs, tokens, at(date(2026, 1, 3)), tokens=500)

    total = usage_aggregate(subscription=mine, meter=tokens, period_start=JAN_1, period_end=FEB_1)

    assert total == Decimal(5)


def test_an_empty_or_backward_period_is_refused(shop: Catalog) -> None:
    calls = shop.meter("calls", Meter.Aggregation.COUNT)
    subscription = _metered(shop, calls)

    with pytest.raises(ValidationError) as error:
        usage_aggregate(
            subscription=subscription, meter=calls, period_start=FEB_1, period_end=FEB_1
        )

    assert (error.value.code, error.value.param) == ("invalid_period", "period_end")


# --- line specs ---------------------------------------------------------------------------------


@pytest.fixture
def api_plan(shop: Catalog) -> dict[str, Any]:
    """Plan `api` charges calls (graduated), storage (volume, flat fees) and seats (unit)."""
    calls = shop.meter("calls", Meter.Aggregation.COUNT, name="API calls", unit_label="calls")
    storage = shop.meter("storage", Meter.Aggregation.MAX, "gb", name="Storage", unit_label="GB")
    seats = shop.meter("seats", Meter.Aggregation.UNIQUE_COUNT, "user", name="Active users")
    plan = shop.plan(
        "api",
        currencies=("USD", "EUR"),
        charges=[
            MeteredCharge(
                calls,
                PlanMeter.Pricing.GRADUATED,
                [("USD", GRADUATED_USD), ("EUR", tiers(("100", "0"), (None, "0.04")))],
            ),
            MeteredCharge(
                storage,
                PlanMeter.Pricing.VOLUME,
                [("USD", tiers(("10", "1.00", "5.00"), (None, "0.50", "20.00")))],
            ),
            MeteredCharge(seats, PlanMeter.Pricing.UNIT, [("USD", tiers((None, "3.3333")))]),
        ],
    )
    return {"plan": plan, "calls": calls, "storage": storage, "seats": seats}


def _bulk_calls(subscription: Subscription, meter: Meter, count: int, day: date) -> None:
    """`count` call events on `day` (rows written directly: recording is tested elsewhere)."""
    UsageEvent.objects.bulk_create(
        UsageEvent(
            customer=subscription.customer,
            subscription=subscription,
            meter=meter,
            event_id=f"bulk-{day}-{n}",
            occurred_at=at(day, 8),
            properties={},
            created_at=NOW,
        )
        for n in range(count)
    )


def test_usage_lines_price_each_metered_charge(shop: Catalog, api_plan: dict[str, Any]) -> None:
    subscription = make_subscription(make_customer(), api_plan["plan"])
    _bulk_calls(subscription, api_plan["calls"], 1500, date(2026, 1, 20))
    _record(subscription, api_plan["storage"], at(date(2026, 1, 4)), gb=8)
    _record(subscription, api_plan["storage"], at(date(2026, 1, 9)), gb="12.5")
    for user in ("ann", "bob", "ann"):
        _record(subscription, api_plan["seats"], at(date(2026, 1, 6)), user=user)

    lines = usage_line_specs(subscription=subscription, period_start=JAN_1, period_end=FEB_1)

    common = {
        "kind": "usage",
        "period_start": JAN_1,
        "period_end": FEB_1,
        "subscription_id": subscription.pk,
        "plan_id": api_plan["plan"].pk,
        "coupon_id": None,
        "price_id": None,
        "proration": None,
    }
    assert lines == [
        LineSpec(
            description="API calls (1500 calls)",
            quantity=Decimal(1500),
            amount=Decimal("107.00"),  # 10 + 72 + 25
            unit_amount=Decimal("0.0713"),  # 107 / 1500, for display
            meter_id=api_plan["calls"].pk,
            **common,
        ),
        LineSpec(
            description="Storage (12.5 GB)",
            quantity=Decimal("12.5"),
            amount=Decimal("26.25"),  # 12.5 x 0.50 + 20.00
            unit_amount=Decimal("2.1000"),
            meter_id=api_plan["storage"].pk,
            **common,
        ),
        LineSpec(
            description="Active users (2 unit)",
            quantity=Decimal(2),
            amount=Decimal("6.6666"),  # unrounded: billing rounds it to 6.67
            unit_amount=Decimal("3.3333"),
            meter_id=api_plan["seats"].pk,
            **common,
        ),
    ]


def test_a_charge_without_usage_bills_zero(shop: Catalog, api_plan: dict[str, Any]) -> None:
    subscription = make_subscription(make_customer(), api_plan["plan"])

    lines = usage_line_specs(subscription=subscription, period_start=JAN_1, period_end=FEB_1)

    assert [(line.meter_id, line.quantity, line.amount, line.unit_amount) for line in lines] == [
        (api_plan["calls"].pk, Decimal(0), Decimal(0), Decimal("0.10")),
        (api_plan["storage"].pk, Decimal(0), Decimal(0), Decimal("1.00")),
        (api_plan["seats"].pk, Decimal(0), Decimal(0), Decimal("3.3333")),
    ]


def test_the_subscription_currency_picks_the_price(shop: Catalog, api_plan: dict[str, Any]) -> None:
    # EUR: only calls have a EUR price (first 100 free, then 0.04); the others have no usage.
    subscription = make_subscription(
        make_customer(currency="EUR"), api_plan["plan"], currency="EUR"
    )
    _bulk_calls(subscription, api_plan["calls"], 250, date(2026, 1, 20))

    lines = usage_line_specs(subscription=subscription, period_start=JAN_1, period_end=FEB_1)

    assert [(line.meter_id, line.quantity, line.amount) for line in lines] == [
        (api_plan["calls"].pk, Decimal(250), Decimal("6.00"))
    ]


def test_usage_without_a_price_in_the_currency_is_refused(
    shop: Catalog, api_plan: dict[str, Any]
) -> None:
    subscription = make_subscription(
        make_customer(currency="EUR"), api_plan["plan"], currency="EUR"
    )
    _record(subscription, api_plan["storage"], at(date(2026, 1, 4)), gb=3)

    with pytest.raises(ValidationError) as error:
        usage_line_specs(subscription=subscription, period_start=JAN_1, period_end=FEB_1)

    assert (error.value.code, error.value.param) == ("meter_price_not_available", "meter")


def test_the_price_version_of_the_pricing_date_is_kept(
    shop: Catalog, api_plan: dict[str, Any]
) -> None:
    plan_meter = PlanMeter.objects.get(meter=api_plan["seats"])
    shop.meter_price(plan_meter, "USD", tiers((None, "9.00")), effective_from=date(2026, 1, 10))
    early = make_subscription(make_customer(), api_plan["plan"], pricing_date=date(2026, 1, 1))
    late = make_subscription(make_customer(), api_plan["plan"], pricing_date=date(2026, 1, 10))
    for subscription in (early, late):
        _record(subscription, api_plan["seats"], at(date(2026, 1, 12)), user="ann")

    amounts = [
        usage_line_specs(subscription=s, period_start=JAN_1, period_end=FEB_1)[2].amount
        for s in (early, late)
    ]

    assert amounts == [Decimal("3.3333"), Decimal("9.00")]


def test_a_charge_priced_after_the_signup_uses_the_version_of_the_billed_period(
    shop: Catalog,
) -> None:
    calls = shop.meter("calls", Meter.Aggregation.COUNT)
    plan = shop.plan("late-priced", charges=[MeteredCharge(calls, PlanMeter.Pricing.UNIT)])
    plan_meter = PlanMeter.objects.get(plan=plan)
    shop.meter_price(plan_meter, "USD", tiers((None, "0.50")), effective_from=date(2026, 1, 20))
    shop.meter_price(plan_meter, "USD", tiers((None, "0.70")), effective_from=FEB_1)
    subscription = make_subscription(make_customer(), plan, pricing_date=date(2025, 12, 1))
    _bulk_calls(subscription, calls, 4, date(2026, 1, 25))

    lines = usage_line_specs(subscription=subscription, period_start=JAN_1, period_end=FEB_1)

    assert [(line.quantity, line.amount) for line in lines] == [(Decimal(4), Decimal("2.00"))]


def test_the_subscription_price_list_wins_over_the_default(shop: Catalog) -> None:
    partners = price_list_create(
        code="partners", name="Partners", kind=PriceList.Kind.PARTNER, actor=SYSTEM
    )
    calls = shop.meter("calls", Meter.Aggregation.COUNT)
    plan = shop.plan(
        "listed",
        charges=[
            MeteredCharge(
                calls,
                PlanMeter.Pricing.UNIT,
                prices=[("USD", tiers((None, "0.10")))],
                price_list_prices=[(partners, "USD", tiers((None, "0.07")))],
            )
        ],
    )
    listed = make_subscription(make_customer(), plan, price_list=partners)
    default = make_subscription(make_customer(), plan)
    for subscription in (listed, default):
        _bulk_calls(subscription, calls, 10, date(2026, 1, 5))

    amounts = [
        usage_line_specs(subscription=s, period_start=JAN_1, period_end=FEB_1)[0].amount
        for s in (listed, default)
    ]

    assert amounts == [Decimal("0.70"), Decimal("1.00")]


def test_a_charge_without_usage_nor_price_is_left_out(shop: Catalog) -> None:
    calls = shop.meter("calls", Meter.Aggregation.COUNT)
    plan = shop.plan("unpriced", charges=[MeteredCharge(calls, PlanMeter.Pricing.UNIT)])
    subscription = make_subscription(make_customer(), plan)

    assert usage_line_specs(subscription=subscription, period_start=JAN_1, period_end=FEB_1) == []


def test_a_plan_without_meters_has_no_usage_lines(shop: Catalog) -> None:
    subscription = make_subscription(make_customer(), shop.plan("flat"))

    assert usage_line_specs(subscription=subscription, period_start=JAN_1, period_end=FEB_1) == []


# --- summary ------------------------------------------------------------------------------------


def test_the_summary_defaults_to_the_current_period(
    shop: Catalog, api_plan: dict[str, Any]
) -> None:
    subscription = make_subscription(
        make_customer(),
        api_plan["plan"],
        start_on=date(2026, 1, 1),
        period=(FEB_1, date(2026, 3, 1)),
    )
    _bulk_calls(subscription, api_plan["calls"], 7, date(2026, 1, 31))  # last period
    _bulk_calls(subscription, api_plan["calls"], 3, FEB_1)
    _record(subscription, api_plan["seats"], at(FEB_1, 9), user="ann")

    summary = usage_summary(subscription=subscription)

    assert (summary.period_start, summary.period_end, summary.currency) == (
        FEB_1,
        date(2026, 3, 1),
        "USD",
    )
    assert [(m.meter.code, m.quantity, m.amount, m.amount_rounded) for m in summary.meters] == [
        ("calls", Decimal(3), Decimal("0.30"), Decimal("0.30")),
        ("storage", Decimal(0), Decimal(0), Decimal("0.00")),
        ("seats", Decimal(1), Decimal("3.3333"), Decimal("3.33")),
    ]
    assert summary.total == Decimal("3.63")


def test_the_summary_of_a_given_period(shop: Catalog, api_plan: dict[str, Any]) -> None:
    subscription = make_subscription(make_customer(), api_plan["plan"])
    _bulk_calls(subscription, api_plan["calls"], 5, date(2026, 1, 9))
    _bulk_calls(subscription, api_plan["calls"], 2, date(2026, 1, 10))

    summary = usage_summary(
        subscription=subscription, period_start=date(2026, 1, 9), period_end=date(2026, 1, 10)
    )

    assert summary.meters[0].quantity == Decimal(5)


@pytest.mark.parametrize(
    ("bounds", "code", "param"),
    [
        ({"period_start": JAN_1}, "invalid_period", "period_end"),
        ({"period_end": FEB_1}, "invalid_period", "period_start"),
        ({"period_start": FEB_1, "period_end": JAN_1}, "invalid_period", "period_end"),
    ],
)
def test_a_summary_period_needs_both_ends_in_order(
    shop: Catalog, api_plan: dict[str, Any], bounds: dict[str, date], code: str, param: str
) -> None:
    subscription = make_subscription(make_customer(), api_plan["plan"])

    with pytest.raises(ValidationError) as error:
        usage_summary(subscription=subscription, **bounds)

    assert (error.value.code, error.value.param) == (code, param)


def test_a_summary_without_a_current_period_needs_one(
    shop: Catalog, api_plan: dict[str, Any]
) -> None:
    subscription = make_subscription(
        make_customer(),
        api_plan["plan"],
        status=Subscription.Status.FUTURE,
        start_on=date(2026, 3, 1),
        period=None,
    )

    with pytest.raises(ValidationError) as error:
        usage_summary(subscription=subscription)

    assert (error.value.code, error.value.param) == ("no_current_period", "period_start")


def test_the_summary_shows_a_charge_without_a_price_as_unpriced(
    shop: Catalog, api_plan: dict[str, Any]
) -> None:
    subscription = make_subscription(
        make_customer(currency="EUR"), api_plan["plan"], currency="EUR"
    )
    _record(subscription, api_plan["seats"], at(date(2026, 1, 4)), user="ann")

    summary = usage_summary(subscription=subscription)

    seats = summary.meters[2]
    assert (seats.quantity, seats.price, seats.amount, seats.amount_rounded) == (
        Decimal(1),
        None,
        None,
        None,
    )
    assert summary.total == Decimal("0")
