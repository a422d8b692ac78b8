"""Plan and quantity changes beyond the headline scenarios: billing-period changes at the
period end, changes before the first paid day, previews, and usage billed in arrears."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from billing.ledger.models import RecognitionSchedule
from billing.ledger.reports import deferred_revenue_reconciliation, revenue_by_month
from billing.models import Invoice, InvoiceLine
from catalog import services as catalog
from catalog.models import Meter, PlanMeter
from catalog.services import TierSpec
from core.models import AuditLog
from subscriptions.models import Subscription, SubscriptionEvent
from subscriptions.services import (
    ChangePreview,
    LifecycleResult,
    subscription_cancel,
    subscription_change_plan,
    subscription_change_quantity,
    subscription_create,
    subscription_next_invoice_preview,
    subscription_preview_change,
)
from subscriptions.usage import usage_event_record
from tests.subscriptions.conftest import STAFF, evergreen, invoices_of, lines_of, trial

pytestmark = pytest.mark.django_db

D = Decimal
REC = InvoiceLine.Kind.RECURRING


def test_monthly_to_annual_at_the_period_end_keeps_the_anchor(
    make_plan: Any, customer: Any, set_today: Any, advance_to: Any
) -> None:
    monthly = make_plan("monthly", "10.00")
    annual = make_plan("annual", "100.00", interval="year")
    subscription = subscription_create(customer=customer, plan=monthly, actor=STAFF).subscription
    advance_to(date(2026, 3, 15))
    set_today(date(2026, 3, 20))

    # 100 a year is less than 10 a month: a downgrade, so at the period end (Apr 15).
    scheduled = subscription_change_plan(subscription=subscription, plan=annual, actor=STAFF)
    advance_to(date(2026, 4, 15))

    assert isinstance(scheduled, LifecycleResult)
    assert scheduled.invoice is None
    # The annual period from the same anchor is [2026-01-15, 2027-01-15): 275 of 365 days left.
    assert lines_of(invoices_of(customer)[-1]) == [
        (REC, date(2026, 4, 15), date(2027, 1, 15), D("75.34"))  # 100 x 275 / 365
    ]
    subscription.refresh_from_db()
    assert subscription.billing_anchor == date(2026, 1, 15)
    assert subscription.next_transition_on == date(2027, 1, 15)


def test_a_change_during_the_trial_costs_nothing_and_the_trial_runs_on(
    make_plan: Any, customer: Any, set_today: Any, advance_to: Any
) -> None:
    basic = make_plan("basic", phases=[trial(10), evergreen("10.00")], tier_rank=1)
    pro = make_plan("pro", "40.00", tier_rank=2)
    subscription = subscription_create(customer=customer, plan=basic, actor=STAFF).subscription
    set_today(date(2026, 1, 20))

    result = subscription_change_plan(subscription=subscription, plan=pro, actor=STAFF)
    advance_to(date(2026, 1, 25))

    assert isinstance(result, LifecycleResult)
    assert result.invoice is None
    assert result.subscription.status == Subscription.Status.TRIALING
    (first,) = invoices_of(customer)
    assert lines_of(first) == [(REC, date(2026, 1, 25), date(2026, 2, 25), D("40.00"))]


def test_a_change_before_a_future_start_replaces_the_plan(
    make_plan: Any, customer: Any, advance_to: Any
) -> None:
    basic = make_plan("basic", "10.00")
    pro = make_plan("pro", "40.00")
    subscription = subscription_create(
        customer=customer, plan=basic, start_on=date(2026, 2, 1), actor=STAFF
    ).subscription

    subscription_change_plan(subscription=subscription, plan=pro, actor=STAFF)
    advance_to(date(2026, 2, 1))

    assert [i.total for i in invoices_of(customer)] == [D("40.00")]


def test_a_change_preview_prices_exactly_what_the_change_then_bills(
    make_plan: Any, customer: Any, set_today: Any
) -> None:
    seats = make_plan("team", "12.00", max_quantity=20)
    subscription = subscription_create(
        customer=customer, plan=seats, quantity=2, actor=STAFF
    ).subscription
    set_today(date(2026, 2, 1))
    writes = (Invoice.objects.count(), SubscriptionEvent.objects.count(), AuditLog.objects.count())

    preview = subscription_preview_change(subscription=subscription, quantity=5)

    assert isinstance(preview, ChangePreview)
    assert preview.policy == "immediate"
    assert preview.invoice is not None
    assert writes == (
        Invoice.objects.count(),
        SubscriptionEvent.objects.count(),
        AuditLog.objects.count(),
    )
    applied = subscription_change_quantity(subscription=subscription, quantity=5, actor=STAFF)
    assert isinstance(applied, LifecycleResult)
    assert applied.invoice is not None
    # [Feb 1, Feb 15) is 14 of 31 days: -2 x 12 x 14 / 31 and +5 x 12 x 14 / 31.
    assert [line.amount for line in preview.invoice.lines] == [D("-10.84"), D("27.10")]
    assert [line[3] for line in lines_of(applied.invoice)] == [D("-10.84"), D("27.10")]
    assert preview.invoice.invoice.total == applied.invoice.total == D("16.26")


def test_the_next_invoice_preview_includes_scheduled_changes_and_addons(
    make_plan: Any, addon_product: Any, customer: Any, set_today: Any
) -> None:
    extra = make_plan("puzzles", "6.00", for_product=addon_product)
    gold = make_plan("gold", "50.00", addons=[extra], tier_rank=2)
    silver = make_plan("silver", "30.00", addons=[extra], tier_rank=1)
    base = subscription_create(customer=customer, plan=gold, actor=STAFF).subscription
    subscription_create(customer=customer, plan=extra, parent=base, actor=STAFF)
    subscription_change_plan(subscription=base, plan=silver, actor=STAFF)
    invoices = Invoice.objects.count()

    upcoming = subscription_next_invoice_preview(subscription=base)

    assert upcoming is not None
    assert upcoming.billing_date == date(2026, 2, 15)
    assert upcoming.invoice is not None
    assert [(line.plan_id, line.amount) for line in upcoming.invoice.lines] == [
        (silver.pk, D("30.00")),
        (extra.pk, D("6.00")),
    ]
    assert Invoice.objects.count() == invoices
    subscription_cancel(subscription=base, actor=STAFF)
    assert subscription_next_invoice_preview(subscription=base) is None


@pytest.fixture
def metered_plan(make_plan: Any, clock: Any) -> Any:
    plan = make_plan("api", "20.00")
    meter = catalog.meter_create(
        code="calls", name="API calls", aggregation=Meter.Aggregation.COUNT, actor=STAFF
    )
    plan_meter = catalog.plan_meter_create(
        plan=plan, meter=meter, pricing=PlanMeter.Pricing.UNIT, actor=STAFF
    )
    catalog.meter_price_create(
        plan_meter=plan_meter,
        currency="USD",
        tiers=[TierSpec(up_to=None, unit_amount=D("0.10"))],
        actor=STAFF,
    )
    return plan


def _calls(customer: Any, count: int, day: date, prefix: str) -> None:
    for n in range(count):
        usage_event_record(
            customer=customer,
            meter_code="calls",
            event_id=f"{prefix}-{n}",
            occurred_at=datetime(day.year, day.month, day.day, 9, tzinfo=UTC),
            actor=STAFF,
        )


def test_usage_is_billed_in_arrears_on_the_renewal_invoice(
    metered_plan: Any, customer: Any, set_today: Any, advance_to: Any
) -> None:
    subscription = subscription_create(
        customer=customer, plan=metered_plan, actor=STAFF
    ).subscription
    set_today(date(2026, 1, 20))
    _calls(customer, 7, date(2026, 1, 20), "jan")

    advance_to(date(2026, 2, 15))

    renewal = invoices_of(customer)[-1]
    kinds = [(line[0], line[1], line[2], line[3]) for line in lines_of(renewal)]
    assert kinds == [
        ("usage", date(2026, 1, 15), date(2026, 2, 15), D("0.70")),
        (REC, date(2026, 2, 15), date(2026, 3, 15), D("20.00")),
    ]
    subscription.refresh_from_db()
    assert subscription.usage_billed_through == date(2026, 2, 15)


def test_an_immediate_cancel_bills_the_usage_up_to_the_cancel(
    metered_plan: Any, customer: Any, set_today: Any
) -> None:
    subscription = subscription_create(
        customer=customer, plan=metered_plan, actor=STAFF
    ).subscription
    set_today(date(2026, 1, 25))
    _calls(customer, 3, date(2026, 1, 24), "early")

    result = subscription_cancel(subscription=subscription, policy="immediate", actor=STAFF)

    assert result.invoice is not None
    assert [(line[0], line[3]) for line in lines_of(result.invoice)] == [
        ("proration_credit", D("-13.55")),  # 20 x 21 / 31
        ("usage", D("0.30")),
    ]
    assert result.subscription.usage_billed_through == date(2026, 1, 25)


def test_a_failing_subscription_is_counted_and_does_not_stop_the_others(
    make_plan: Any, make_customer: Any, set_today: Any, advance_to: Any
) -> None:
    unpriced = make_plan("unpriced-usage", "20.00")
    meter = catalog.meter_create(
        code="calls", name="API calls", aggregation=Meter.Aggregation.COUNT, actor=STAFF
    )
    catalog.plan_meter_create(
        plan=unpriced, meter=meter, pricing=PlanMeter.Pricing.UNIT, actor=STAFF
    )
    broken_customer, fine_customer = make_customer(), make_customer()
    broken = subscription_create(customer=broken_customer, plan=unpriced, actor=STAFF)
    fine = subscription_create(customer=fine_customer, plan=make_plan("monthly"), actor=STAFF)
    set_today(date(2026, 1, 20))
    _calls(broken_customer, 2, date(2026, 1, 20), "x")

    report = advance_to(date(2026, 2, 15))

    (day,) = [d for d in report["days"] if d["date"] == "2026-02-15"]
    assert day["work"]["subscriptions"] == {"failed": 1, "invoices": 1, "renewed": 1}
    broken.subscription.refresh_from_db()
    fine.subscription.refresh_from_db()
    assert broken.subscription.billed_through == date(2026, 2, 15)  # nothing moved
    assert fine.subscription.billed_through == date(2026, 3, 15)
    assert len(invoices_of(broken_customer)) == 1


def test_an_upgrade_gives_the_unused_days_revenue_back_over_those_days(
    make_plan: Any, customer: Any, advance_to: Any
) -> None:
    """10.00 a month from Jan 15, upgraded to 20.00 on Jan 25: the unused time (-6.77, 21 of
    31 days) is given back over Jan 25 - Feb 15 as the new price is earned, so January earns
    5.48 - 2.26 + 4.52 and nothing goes to refunds and credits."""
    silver = make_plan("silver", "10.00")
    gold = make_plan("gold", "20.00")
    subscription = subscription_create(customer=customer, plan=silver, actor=STAFF).subscription
    advance_to(date(2026, 1, 25))

    result = subscription_change_plan(subscription=subscription, plan=gold, actor=STAFF)

    assert isinstance(result, LifecycleResult)
    assert result.invoice is not None
    credit, charge = result.invoice.lines.order_by("position")
    assert (credit.kind, credit.total, charge.total) == (
        InvoiceLine.Kind.PRORATION_CREDIT,
        D("-6.77"),
        D("13.55"),
    )
    schedule = RecognitionSchedule.objects.get(source_id=str(credit.pk))
    assert (schedule.amount, schedule.service_start, schedule.service_end) == (
        D("-6.77"),
        date(2026, 1, 25),
        date(2026, 2, 15),
    )

    advance_to(date(2026, 2, 2))

    (january,) = revenue_by_month(currency="USD", start=date(2026, 1, 1), end=date(2026, 1, 31))
    assert (january.recognized, january.refunds_and_credits) == (D("7.74"), D("0"))
    assert all(row.difference == 0 for row in deferred_revenue_reconciliation())
