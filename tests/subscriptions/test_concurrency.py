"""Concurrent lifecycle writes on real PostgreSQL: real threads, real transactions, row locks.

Two simultaneous changes or cancels on one subscription never both apply; the daily work of a
day run twice at the same moment bills once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from django.db import close_old_connections, connection

from billing.models import Invoice, InvoiceLine
from core.errors import ApplicationError
from subscriptions.models import Subscription, SubscriptionEvent
from subscriptions.services import (
    subscription_cancel,
    subscription_change_plan,
    subscription_create,
    subscriptions_process_day,
)
from tests.subscriptions.conftest import STAFF, balance_of

pytestmark = pytest.mark.django_db(transaction=True)

T = TypeVar("T")


def _run_at_once(calls: list[Callable[[], T]]) -> list[T | ApplicationError]:
    """Each call in its own thread and database connection, all released together."""
    barrier = threading.Barrier(len(calls))
    results: list[T | ApplicationError | None] = [None] * len(calls)
    crashes: list[BaseException] = []

    def run(index: int, call: Callable[[], T]) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = call()
        except ApplicationError as refusal:
            results[index] = refusal
        except BaseException as crash:  # noqa: BLE001 - reported to the test below
            crashes.append(crash)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    close_old_connections()
    assert not crashes, crashes
    return results  # type: ignore[return-value]


def _events(subscription: Subscription, kind: str) -> int:
    return SubscriptionEvent.objects.filter(subscription=subscription, kind=kind).count()


def test_two_simultaneous_immediate_cancels_credit_once(
    make_plan: Any, customer: Any, set_today: Any
) -> None:
    subscription = subscription_create(
        customer=customer, plan=make_plan("monthly"), actor=STAFF
    ).subscription
    set_today(date(2026, 1, 25))

    results = _run_at_once(
        [
            lambda: subscription_cancel(subscription=subscription, policy="immediate", actor=STAFF)
            for _ in range(2)
        ]
    )

    refusals = [r for r in results if isinstance(r, ApplicationError)]
    assert [r.code for r in refusals] == ["subscription_ended"]
    assert _events(subscription, "canceled") == 1
    assert Invoice.objects.filter(billing_reason="subscription_cancel").count() == 1
    assert balance_of(customer) == Decimal("20.32")


def test_two_simultaneous_cancels_at_period_end_schedule_once(
    make_plan: Any, customer: Any
) -> None:
    subscription = subscription_create(
        customer=customer, plan=make_plan("monthly"), actor=STAFF
    ).subscription

    _run_at_once([lambda: subscription_cancel(subscription=subscription, actor=STAFF)] * 2)

    assert _events(subscription, "cancel_scheduled") == 1


def test_two_simultaneous_upgrades_apply_once(
    make_plan: Any, customer: Any, set_today: Any
) -> None:
    silver = make_plan("silver", "30.00", tier_rank=1)
    gold = make_plan("gold", "60.00", tier_rank=2)
    subscription = subscription_create(customer=customer, plan=silver, actor=STAFF).subscription
    set_today(date(2026, 1, 25))

    results = _run_at_once(
        [lambda: subscription_change_plan(subscription=subscription, plan=gold, actor=STAFF)] * 2
    )

    refusals = [r for r in results if isinstance(r, ApplicationError)]
    assert [r.code for r in refusals] == ["plan_unchanged"]
    assert _events(subscription, "plan_changed") == 1
    assert Invoice.objects.filter(billing_reason="subscription_update").count() == 1
    assert InvoiceLine.objects.filter(kind=InvoiceLine.Kind.PRORATION_CREDIT).count() == 1


def test_a_plan_change_racing_a_cancel_never_leaves_both_half_applied(
    make_plan: Any, customer: Any, set_today: Any
) -> None:
    silver = make_plan("silver", "30.00", tier_rank=1)
    gold = make_plan("gold", "60.00", tier_rank=2)
    subscription = subscription_create(customer=customer, plan=silver, actor=STAFF).subscription
    set_today(date(2026, 1, 25))

    _run_at_once(
        [
            lambda: subscription_change_plan(subscription=subscription, plan=gold, actor=STAFF),
            lambda: subscription_cancel(subscription=subscription, policy="immediate", actor=STAFF),
        ]
    )

    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.CANCELED
    # Whatever the order, the days from the cancel on are given back once, at what the first
    # invoice charged for them (30 x 21 / 31): an upgrade in between nets out.
    late = InvoiceLine.objects.filter(
        subscription_id=subscription.pk, period_start=date(2026, 1, 25)
    )
    assert sum(line.amount for line in late) == Decimal("-20.32")


def test_the_daily_work_of_one_day_run_twice_at_once_bills_once(
    make_plan: Any, make_customer: Any, clock: Any
) -> None:
    plan = make_plan("monthly")
    subscriptions = [
        subscription_create(customer=make_customer(), plan=plan, actor=STAFF).subscription
        for _ in range(3)
    ]

    reports = _run_at_once([lambda: subscriptions_process_day(date(2026, 2, 15))] * 2)

    renewals = InvoiceLine.objects.filter(kind="recurring", period_start=date(2026, 2, 15))
    assert renewals.count() == 3
    assert sum(r["renewed"] for r in reports if isinstance(r, dict) and "renewed" in r) == 3
    for subscription in subscriptions:
        subscription.refresh_from_db()
        assert subscription.billed_through == date(2026, 3, 15)
