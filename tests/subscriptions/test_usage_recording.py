"""usage_event_record: idempotent by event id, routed to the billable subscription, validated."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection

from catalog.models import Meter, Plan, PlanMeter
from core.actors import SYSTEM
from core.errors import ApplicationError, ConflictError, ValidationError
from core.models import AuditLog
from customers.models import Customer
from subscriptions.models import Subscription, UsageEvent
from subscriptions.usage import usage_event_record
from tests.subscriptions.usage_support import (
    FEB_1,
    NOW,
    Catalog,
    MeteredCharge,
    at,
    make_customer,
    make_subscription,
    tiers,
)

pytestmark = pytest.mark.django_db


class World:
    """A customer on plan `api-pro`, which meters calls (count), tokens (sum), storage (max)
    and active users (unique count); plan `basic` meters nothing."""

    def __init__(self) -> None:
        self.catalog = Catalog()
        self.calls = self.catalog.meter("calls", Meter.Aggregation.COUNT)
        self.tokens = self.catalog.meter("tokens", Meter.Aggregation.SUM, "tokens")
        self.storage = self.catalog.meter("storage", Meter.Aggregation.MAX, "gb")
        self.users = self.catalog.meter("users", Meter.Aggregation.UNIQUE_COUNT, "user.id")
        unit = [("USD", tiers((None, "0.01")))]
        self.plan: Plan = self.catalog.plan(
            "api-pro",
            charges=[
                MeteredCharge(meter, PlanMeter.Pricing.UNIT, unit)
                for meter in (self.calls, self.tokens, self.storage, self.users)
            ],
        )
        self.basic: Plan = self.catalog.plan("basic")
        self.customer: Customer = make_customer()
        self.subscription: Subscription = make_subscription(self.customer, self.plan)

    def record(self, **kwargs: Any) -> tuple[UsageEvent, bool]:
        kwargs.setdefault("customer", self.customer)
        kwargs.setdefault("meter_code", "calls")
        kwargs.setdefault("event_id", "evt-1")
        kwargs.setdefault("occurred_at", at(date(2026, 1, 10), 9))
        kwargs.setdefault("properties", {})
        return usage_event_record(actor=SYSTEM, **kwargs)


@pytest.fixture
def world(clock: Any) -> World:
    return World()


def _audit_actions() -> list[str]:
    return list(
        AuditLog.objects.filter(object_type="subscriptions.usageevent").values_list(
            "action", flat=True
        )
    )


# --- recording and idempotency ------------------------------------------------------------------


def test_an_event_is_recorded_on_the_subscription_that_meters_it(world: World) -> None:
    event, created = world.record(
        meter_code="tokens", properties={"tokens": 1200, "model": "large"}
    )

    assert created is True
    stored = UsageEvent.objects.get()
    assert stored == event
    assert (stored.customer, stored.subscription, stored.meter) == (
        world.customer,
        world.subscription,
        world.tokens,
    )
    assert stored.event_id == "evt-1"
    assert stored.occurred_at == at(date(2026, 1, 10), 9)
    assert stored.properties == {"tokens": 1200, "model": "large"}
    assert stored.created_at == NOW
    assert _audit_actions() == ["usage_event.record"]


def test_occurred_at_defaults_to_the_platform_clock(world: World) -> None:
    event, _ = world.record(occurred_at=None)

    assert event.occurred_at == NOW


def test_the_same_event_twice_is_stored_once(world: World) -> None:
    first, first_created = world.record(meter_code="tokens", properties={"tokens": "12.5"})

    again, created = world.record(meter_code="tokens", properties={"tokens": "12.5"})

    assert (first_created, created) == (True, False)
    assert again.pk == first.pk
    assert UsageEvent.objects.count() == 1
    assert _audit_actions() == ["usage_event.record"]  # the resend wrote nothing


def test_a_resend_without_a_time_matches_the_stored_event(world: World) -> None:
    first, _ = world.record()

    again, created = world.record(occurred_at=None)

    assert (again.pk, created) == (first.pk, False)
    assert again.occurred_at == at(date(2026, 1, 10), 9)


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"properties": {"tokens": 13}}, "properties"),
        ({"occurred_at": at(date(2026, 1, 10), 10)}, "occurred_at"),
        ({"meter_code": "storage", "properties": {"tokens": 12, "gb": 1}}, "meter"),
    ],
)
def test_the_same_id_with_another_payload_is_a_conflict(
    world: World, change: dict[str, Any], param: str
) -> None:
    world.record(meter_code="tokens", properties={"tokens": 12})
    payload = {"meter_code": "tokens", "properties": {"tokens": 12}} | change

    with pytest.raises(ConflictError) as error:
        world.record(**payload)

    assert error.value.code == "usage_event_conflict"
    assert error.value.param == param
    stored = UsageEvent.objects.get()
    assert (stored.meter, stored.properties) == (world.tokens, {"tokens": 12})
    assert stored.occurred_at == at(date(2026, 1, 10), 9)


def test_the_same_id_for_another_subscription_is_a_conflict(world: World) -> None:
    other = make_subscription(world.customer, world.plan)
    world.record(subscription=world.subscription)

    with pytest.raises(ConflictError) as error:
        world.record(subscription=other)

    assert (error.value.code, error.value.param) == ("usage_event_conflict", "subscription")
    assert world.record()[1] is False  # without a subscription it is the same event


def test_event_ids_are_unique_per_customer_only(world: World) -> None:
    neighbour = make_customer()
    make_subscription(neighbour, world.plan)
    world.record()

    theirs, created = world.record(customer=neighbour)

    assert created is True
    assert UsageEvent.objects.count() == 2
    assert theirs.customer == neighbour


def test_a_resend_after_the_period_was_billed_still_answers_with_the_stored_event(
    world: World,
) -> None:
    first, _ = world.record()
    Subscription.objects.filter(pk=world.subscription.pk).update(usage_billed_through=FEB_1)

    again, created = world.record()

    assert (again.pk, created) == (first.pk, False)


def test_decimal_properties_are_stored_as_decimal_strings(world: World) -> None:
    event, _ = world.record(meter_code="tokens", properties={"tokens": Decimal("2.50")})

    event.refresh_from_db()
    assert event.properties == {"tokens": "2.50"}
    assert world.record(meter_code="tokens", properties={"tokens": Decimal("2.50")})[1] is False


# --- which subscription -------------------------------------------------------------------------


def test_no_subscription_metering_the_meter_is_refused(world: World) -> None:
    loner = make_customer()
    make_subscription(loner, world.basic)

    with pytest.raises(ValidationError) as error:
        world.record(customer=loner)

    assert (error.value.code, error.value.param) == ("no_metered_subscription", "meter")
    assert not UsageEvent.objects.exists()


@pytest.mark.parametrize(
    ("state", "occurred_on"),
    [
        # Ended at the start of Jan 10: usage on Jan 10 is after the end.
        (
            {"status": Subscription.Status.CANCELED, "ended_on": date(2026, 1, 10)},
            date(2026, 1, 10),
        ),
        # Starts on Jan 20.
        (
            {"status": Subscription.Status.FUTURE, "start_on": date(2026, 1, 20), "period": None},
            date(2026, 1, 10),
        ),
        # Paused since Jan 5.
        ({"status": Subscription.Status.PAUSED, "paused_on": date(2026, 1, 5)}, date(2026, 1, 10)),
    ],
    ids=["canceled-before", "future", "paused"],
)
def test_a_subscription_that_is_not_billable_then_takes_no_usage(
    clock: Any, state: dict[str, Any], occurred_on: date
) -> None:
    world = World()
    Subscription.objects.all().delete()
    make_subscription(world.customer, world.plan, **state)

    with pytest.raises(ValidationError) as error:
        world.record(occurred_at=at(occurred_on, 8))

    assert error.value.code == "no_metered_subscription"
    assert not UsageEvent.objects.exists()


def test_usage_before_an_immediate_cancel_is_still_recorded(world: World) -> None:
    Subscription.objects.filter(pk=world.subscription.pk).update(
        status=Subscription.Status.CANCELED, ended_on=date(2026, 1, 12), canceled_at=NOW
    )

    event, created = world.record(occurred_at=at(date(2026, 1, 11), 23, 59, 59))

    assert created is True
    assert event.subscription_id == world.subscription.pk


def test_usage_before_the_subscription_started_is_refused(world: World) -> None:
    with pytest.raises(ValidationError) as error:
        world.record(occurred_at=at(date(2025, 12, 31), 23, 59, 59))

    assert error.value.code == "no_metered_subscription"


def test_a_base_subscription_takes_usage_before_an_add_on_metering_the_same(
    world: World,
) -> None:
    addon_plan = world.catalog.plan(
        "calls-pack",
        addon=True,
        charges=[
            MeteredCharge(world.calls, PlanMeter.Pricing.UNIT, [("USD", tiers((None, "0.01")))])
        ],
    )
    # The add-on was created later, so "latest started" alone would pick it.
    make_subscription(
        world.customer, addon_plan, parent=world.subscription, start_on=date(2026, 1, 5)
    )

    event, _ = world.record()

    assert event.subscription_id == world.subscription.pk


def test_the_latest_started_subscription_takes_usage_when_two_meter_it(world: World) -> None:
    newer = make_subscription(world.customer, world.plan, start_on=date(2026, 1, 5))

    event, _ = world.record()

    assert event.subscription_id == newer.pk


def test_an_explicit_subscription_is_used(world: World) -> None:
    newer = make_subscription(world.customer, world.plan, start_on=date(2026, 1, 5))

    event, _ = world.record(subscription=world.subscription)

    assert event.subscription_id == world.subscription.pk != newer.pk


def test_an_explicit_subscription_must_meter_the_meter(world: World) -> None:
    basic = make_subscription(world.customer, world.basic)

    with pytest.raises(ValidationError) as error:
        world.record(subscription=basic)

    assert (error.value.code, error.value.param) == ("no_metered_subscription", "subscription")


def test_an_explicit_subscription_of_another_customer_is_refused(world: World) -> None:
    other = make_subscription(make_customer(), world.plan)

    with pytest.raises(ValidationError) as error:
        world.record(subscription=other)

    assert (error.value.code, error.value.param) == (
        "subscription_customer_mismatch",
        "subscription",
    )
    assert not UsageEvent.objects.exists()


# --- time ---------------------------------------------------------------------------------------


def test_usage_up_to_five_minutes_ahead_is_accepted(world: World) -> None:
    event, _ = world.record(occurred_at=NOW + timedelta(minutes=5))

    assert event.occurred_at == NOW + timedelta(minutes=5)


def test_usage_further_in_the_future_is_refused(world: World) -> None:
    with pytest.raises(ValidationError) as error:
        world.record(occurred_at=NOW + timedelta(minutes=5, seconds=1))

    assert (error.value.code, error.value.param) == ("usage_in_future", "occurred_at")
    assert not UsageEvent.objects.exists()


def test_usage_for_a_billed_period_is_refused(world: World) -> None:
    Subscription.objects.filter(pk=world.subscription.pk).update(
        usage_billed_through=date(2026, 1, 10)
    )

    with pytest.raises(ValidationError) as error:
        world.record(occurred_at=at(date(2026, 1, 9), 23, 59, 59, 999999))
    accepted, _ = world.record(event_id="evt-2", occurred_at=at(date(2026, 1, 10)))

    assert (error.value.code, error.value.param) == ("usage_period_closed", "occurred_at")
    assert list(UsageEvent.objects.values_list("event_id", flat=True)) == ["evt-2"]
    assert accepted.occurred_at == at(date(2026, 1, 10))


def test_usage_before_a_first_paid_day_still_ahead_is_kept(world: World) -> None:
    # A trial's mark is its first paid day: trial usage is recorded (and never billed).
    Subscription.objects.filter(pk=world.subscription.pk).update(
        status=Subscription.Status.TRIALING, usage_billed_through=date(2026, 1, 20)
    )

    event, created = world.record(occurred_at=at(date(2026, 1, 10), 9))

    assert created is True
    assert event.subscription_id == world.subscription.pk


def test_a_time_without_a_timezone_is_refused(world: World) -> None:
    with pytest.raises(ValidationError) as error:
        world.record(occurred_at=datetime(2026, 1, 10, 9))  # noqa: DTZ001 - the point of the test

    assert (error.value.code, error.value.param) == ("invalid_occurred_at", "occurred_at")


# --- input --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("meter_code", "properties", "param"),
    [
        ("tokens", {}, "properties.tokens"),
        ("tokens", {"tokens": None}, "properties.tokens"),
        ("tokens", {"tokens": "many"}, "properties.tokens"),
        ("tokens", {"tokens": "1e3"}, "properties.tokens"),
        ("tokens", {"tokens": True}, "properties.tokens"),
        ("tokens", {"tokens": -1}, "properties.tokens"),
        ("tokens", {"tokens": "0.00001"}, "properties.tokens"),  # 5 decimals
        ("tokens", {"tokens": 10**15}, "properties.tokens"),
        ("tokens", {"tokens": [1]}, "properties.tokens"),
        ("storage", {"tokens": 3}, "properties.gb"),
        ("users", {"user": {}}, "properties.user.id"),
        ("users", {"user": {"id": ""}}, "properties.user.id"),
        ("users", {"user": {"id": False}}, "properties.user.id"),
        ("users", {"user": "u-1"}, "properties.user.id"),
    ],
)
def test_the_aggregated_property_must_fit_the_meter(
    world: World, meter_code: str, properties: dict[str, Any], param: str
) -> None:
    with pytest.raises(ValidationError) as error:
        world.record(meter_code=meter_code, properties=properties)

    assert (error.value.code, error.value.param) == ("invalid_usage_value", param)
    assert not UsageEvent.objects.exists()


@pytest.mark.parametrize(
    ("meter_code", "properties"),
    [
        ("tokens", {"tokens": 0}),
        ("tokens", {"tokens": "0.0001"}),
        ("tokens", {"tokens": " 12.5 "}),
        ("tokens", {"tokens": 10**15 - 1}),
        ("storage", {"gb": "100"}),
        ("users", {"user": {"id": "u-1"}}),
        ("users", {"user": {"id": 42}}),
        ("calls", {}),
    ],
)
def test_well_formed_values_are_accepted(
    world: World, meter_code: str, properties: dict[str, Any]
) -> None:
    event, created = world.record(meter_code=meter_code, properties=properties)

    assert created is True
    assert event.properties == properties


def test_json_floats_are_refused_even_outside_the_metered_property(world: World) -> None:
    with pytest.raises(ValidationError) as error:
        world.record(properties={"latency": 0.1})

    assert (error.value.code, error.value.param) == ("invalid_properties", "properties.latency")


def test_properties_must_be_an_object(world: World) -> None:
    with pytest.raises(ValidationError) as error:
        world.record(properties=["tokens"])

    assert (error.value.code, error.value.param) == ("invalid_properties", "properties")


@pytest.mark.parametrize("event_id", ["", "   ", "x" * 201, "a\x00b"])
def test_an_event_id_is_required_and_bounded(world: World, event_id: str) -> None:
    with pytest.raises(ValidationError) as error:
        world.record(event_id=event_id)

    assert (error.value.code, error.value.param) == ("invalid_event_id", "event_id")


def test_an_event_id_is_trimmed(world: World) -> None:
    event, _ = world.record(event_id="  evt-9 ")

    assert event.event_id == "evt-9"
    assert world.record(event_id="evt-9")[1] is False


def test_an_unknown_meter_is_refused(world: World) -> None:
    with pytest.raises(ValidationError) as error:
        world.record(meter_code="bandwidth")

    assert (error.value.code, error.value.param) == ("meter_not_found", "meter")


# --- concurrency --------------------------------------------------------------------------------


def _in_threads(count: int, work: Callable[[], Any]) -> list[Any]:
    """Run `work` in `count` threads started together; return results or raised errors."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work()
        except ApplicationError as error:
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicate_sends_store_one_event(clock: Any) -> None:
    world = World()

    results = _in_threads(6, lambda: world.record(meter_code="tokens", properties={"tokens": 5}))

    assert UsageEvent.objects.count() == 1
    stored = UsageEvent.objects.get()
    assert sorted(created for _, created in results) == [False] * 5 + [True]
    assert {event.pk for event, _ in results} == {stored.pk}
    assert _audit_actions() == ["usage_event.record"]


@pytest.mark.django_db(transaction=True)
def test_concurrent_sends_of_one_id_with_different_payloads_store_one(clock: Any) -> None:
    world = World()
    payloads = iter(range(1, 5))
    lock = threading.Lock()

    def send() -> tuple[UsageEvent, bool]:
        with lock:
            tokens = next(payloads)
        return world.record(meter_code="tokens", properties={"tokens": tokens})

    results = _in_threads(4, send)

    stored = UsageEvent.objects.get()
    winners = [r for r in results if isinstance(r, tuple)]
    losers = [r for r in results if isinstance(r, ConflictError)]
    assert [(event.pk, created) for event, created in winners] == [(stored.pk, True)]
    assert [error.code for error in losers] == ["usage_event_conflict"] * 3
    assert stored.properties == {"tokens": winners[0][0].properties["tokens"]}
