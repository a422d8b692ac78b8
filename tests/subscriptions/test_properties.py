"""Random lifecycles (hypothesis): whatever happens, the books stay right.

Each example subscribes a new customer, then plays random operations (plan and quantity
changes, cancels, pauses, resumes, undos, each possibly sent twice) between random clock moves
run through the daily work. Afterwards:

- the service days billed, net of credits, cover every day the subscription ran exactly once:
  no overlap, no gap (paused days excepted), nothing after it ended;
- every invoice's totals are the sums of its rounded lines;
- the credit balance never went below zero;
- an operation sent twice changed nothing the second time.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.models import CustomerBalanceTransaction, Invoice, InvoiceLine
from core import services as core_services
from core.errors import ApplicationError
from core.services import audit_snapshot
from subscriptions.models import ScheduledChange, Subscription, SubscriptionEvent
from subscriptions.services import (
    subscription_cancel,
    subscription_change_plan,
    subscription_change_quantity,
    subscription_create,
    subscription_pause,
    subscription_resume,
    subscription_undo_cancel,
    subscription_undo_scheduled_change,
    subscriptions_process_day,
)
from tests.subscriptions.conftest import STAFF, evergreen, fixed_term, intro, trial

pytestmark = pytest.mark.django_db

PLANS = ["basic", "premium", "annual"]
POLICIES = [None, "immediate", "end_of_term"]

operations = st.one_of(
    st.tuples(st.just("advance"), st.integers(min_value=1, max_value=75)),
    st.tuples(st.just("change_plan"), st.sampled_from(PLANS), st.sampled_from(POLICIES)),
    st.tuples(
        st.just("change_quantity"), st.integers(min_value=1, max_value=4), st.sampled_from(POLICIES)
    ),
    st.tuples(st.just("cancel"), st.sampled_from(["end_of_term", "immediate"])),
    st.tuples(st.just("undo_cancel")),
    st.tuples(
        st.just("pause"),
        st.sampled_from(["now", "period_end"]),
        st.integers(min_value=1, max_value=3),
    ),
    st.tuples(st.just("resume")),
    st.tuples(st.just("undo_change"), st.sampled_from(["change_plan", "change_quantity", "pause"])),
)


@pytest.fixture
def property_plans(make_plan: Any) -> dict[str, Any]:
    return {
        "basic": make_plan("basic", "10.00", tier_rank=1, max_quantity=10),
        "premium": make_plan("premium", "25.00", tier_rank=2, max_quantity=10),
        "annual": make_plan("annual", "100.00", interval="year", tier_rank=1, max_quantity=10),
        "intro": make_plan(
            "intro", phases=[intro("5.00", 2), evergreen("10.00")], tier_rank=1, max_quantity=10
        ),
        "term": make_plan("term", phases=[fixed_term("12.00", 3)], tier_rank=1, max_quantity=10),
        "trial": make_plan(
            "trial", phases=[trial(10), evergreen("10.00")], tier_rank=1, max_quantity=10
        ),
    }


def _run_days(today: date, until: date) -> date:
    day = today
    while day < until:
        day += timedelta(days=1)
        core_services.test_clock_set(to=datetime.combine(day, time.min, tzinfo=UTC))
        subscriptions_process_day(day)
    core_services.test_clock_set(to=datetime.combine(until, time(12), tzinfo=UTC))
    return until


def _call(op: tuple[Any, ...], subscription: Subscription, plans: dict[str, Any]) -> None:
    name = op[0]
    if name == "change_plan":
        subscription_change_plan(
            subscription=subscription, plan=plans[op[1]], policy=op[2], actor=STAFF
        )
    elif name == "change_quantity":
        subscription_change_quantity(
            subscription=subscription, quantity=op[1], policy=op[2], actor=STAFF
        )
    elif name == "cancel":
        subscription_cancel(subscription=subscription, policy=op[1], actor=STAFF)
    elif name == "undo_cancel":
        subscription_undo_cancel(subscription=subscription, actor=STAFF)
    elif name == "pause":
        subscription_pause(subscription=subscription, when=op[1], cycles=op[2], actor=STAFF)
    elif name == "resume":
        subscription_resume(subscription=subscription, actor=STAFF)
    elif name == "undo_change":
        subscription_undo_scheduled_change(subscription=subscription, kind=op[1], actor=STAFF)


def _footprint(subscription: Subscription) -> tuple[Any, ...]:
    subscription.refresh_from_db()
    snapshot = audit_snapshot(subscription)
    snapshot.pop("updated_at")
    return (
        snapshot,
        Invoice.objects.filter(customer=subscription.customer).count(),
        SubscriptionEvent.objects.filter(subscription=subscription).count(),
        ScheduledChange.objects.filter(subscription=subscription).count(),
    )


def _attempt(op: tuple[Any, ...], subscription: Subscription, plans: dict[str, Any]) -> None:
    # A refusal is fine: it must simply change nothing (the replays check that).
    with contextlib.suppress(ApplicationError):
        _call(op, subscription, plans)


def _coverage(subscription: Subscription) -> Counter[date]:
    covered: Counter[date] = Counter()
    lines = InvoiceLine.objects.filter(
        subscription_id=subscription.pk,
        kind__in=["recurring", "proration_charge", "proration_credit"],
    )
    for line in lines:
        sign = -1 if line.kind == "proration_credit" else 1
        assert line.period_start is not None
        assert line.period_end is not None
        day = line.period_start
        while day < line.period_end:
            covered[day] += sign
            day += timedelta(days=1)
    return covered


def _expected_days(subscription: Subscription) -> set[date]:
    first = (
        InvoiceLine.objects.filter(subscription_id=subscription.pk, kind="recurring")
        .order_by("period_start")
        .values_list("period_start", flat=True)
        .first()
    )
    if first is None:
        return set()
    end = subscription.billed_through
    assert end is not None
    paused: list[tuple[date, date]] = []
    pause_start: date | None = None
    for event in SubscriptionEvent.objects.filter(subscription=subscription).order_by("id"):
        if event.kind == "paused":
            pause_start = date.fromisoformat(event.data["paused_on"])
        elif event.kind == "resumed" and pause_start is not None:
            paused.append((pause_start, date.fromisoformat(event.data["resumed_on"])))
            pause_start = None
    if pause_start is not None:
        paused.append((pause_start, max(end, pause_start)))
    days = set()
    day = first
    while day < end:
        if not any(start <= day < stop for start, stop in paused):
            days.add(day)
        day += timedelta(days=1)
    return days


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    first_plan=st.sampled_from(["basic", "intro", "term", "trial"]),
    ops=st.lists(st.tuples(operations, st.booleans()), min_size=1, max_size=8),
)
def test_random_lifecycles_keep_the_books_right(
    first_plan: str,
    ops: list[tuple[tuple[Any, ...], bool]],
    property_plans: dict[str, Any],
    make_customer: Any,
) -> None:
    start = date(2026, 1, 15)
    core_services.test_clock_set(to=datetime.combine(start, time(12), tzinfo=UTC))
    customer = make_customer()
    subscription = subscription_create(
        customer=customer, plan=property_plans[first_plan], actor=STAFF
    ).subscription
    today = start

    for op, replay in ops:
        if op[0] == "advance":
            today = _run_days(today, today + timedelta(days=op[1]))
            continue
        _attempt(op, subscription, property_plans)
        if replay:
            before = _footprint(subscription)
            _attempt(op, subscription, property_plans)
            assert _footprint(subscription) == before, f"replaying {op} changed something"
    today = _run_days(today, today + timedelta(days=40))
    subscription.refresh_from_db()

    covered = _coverage(subscription)
    assert all(count in (0, 1) for count in covered.values()), "a day was billed twice"
    assert {day for day, count in covered.items() if count == 1} == _expected_days(subscription)

    for invoice in Invoice.objects.filter(customer=customer).prefetch_related("lines"):
        lines = list(invoice.lines.all())
        assert invoice.subtotal == sum((line.amount for line in lines), Decimal(0))
        assert invoice.discount_total == sum((line.discount_amount for line in lines), Decimal(0))
        assert invoice.tax_total == sum((line.tax_amount for line in lines), Decimal(0))
        assert invoice.total == sum((line.total for line in lines), Decimal(0))
        assert invoice.amount_due >= 0
    balances = CustomerBalanceTransaction.objects.filter(customer=customer)
    assert all(t.balance_after >= 0 for t in balances)

    # Clean up: the next example must not find this one still running.
    if subscription.status != Subscription.Status.CANCELED:
        subscription_cancel(subscription=subscription, policy="immediate", actor=STAFF)
