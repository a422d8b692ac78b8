"""Dunning played day by day with the test clock: a monthly subscription's renewal on Feb 15
(day D) is declined, then retried on D+1, D+3, D+5 and D+7, warned on D+3, blocked on D+7
(no entitlements) and canceled (or left unpaid) on D+14, unless a new card pays it.

Committed transactions (transactional database): autocharge and billing's payment listener
run after each commit, exactly as in production.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.core import mail

from billing.models import CustomerBalanceTransaction, Invoice, PaymentAttempt
from billing.services import payment_method_attach
from catalog import services as catalog
from catalog.models import Plan
from core import services as core_services
from core.webhooks.models import OutboxEvent
from customers.models import Customer
from subscriptions.dunning import dunning_process_day
from subscriptions.entitlements import customer_has_feature
from subscriptions.models import DunningCase, Subscription, SubscriptionEvent
from subscriptions.services import subscription_create
from tests.subscriptions.conftest import STAFF, midnight

pytestmark = pytest.mark.django_db(transaction=True)

VISA = "4242424242424242"
DECLINES = "4000000000000341"  # soft: generic_decline at charge time
STOLEN = "4000000000009979"  # hard: stolen_card
D = date(2026, 2, 15)
PAY_URL = "http://portal.test/portal/invoices/{}"


@pytest.fixture(autouse=True)
def _dunning_settings(settings: Any) -> None:
    settings.PAYMENT_GATEWAY = "simulated"
    settings.PORTAL_BASE_URL = "http://portal.test"
    settings.DUNNING_RETRY_DAYS = [1, 3, 5, 7]
    settings.DUNNING_WARNING_AFTER_DAYS = 3
    settings.DUNNING_BLOCK_AFTER_DAYS = 7
    settings.DUNNING_FINAL_ACTION_AFTER_DAYS = 14
    settings.DUNNING_FINAL_ACTION = "cancel"


@pytest.fixture
def pro(make_plan: Callable[..., Plan]) -> Plan:
    hd = catalog.feature_create(code="hd", name="HD streaming", actor=STAFF)
    return make_plan("pro", "30.00", features=[hd])


def save_card(customer: Customer, number: str) -> None:
    payment_method_attach(
        customer=customer, card_number=number, exp_month=12, exp_year=2030, actor=STAFF
    )


def advance(day: date) -> dict[str, Any]:
    return core_services.test_clock_advance(to=midnight(day), actor=STAFF)


@pytest.fixture
def subscriber(customer: Customer, pro: Plan) -> Subscription:
    """Subscribed on Jan 15 with a good card (paid), then the card is replaced by `DECLINES`."""
    save_card(customer, VISA)
    subscription = subscription_create(customer=customer, plan=pro, actor=STAFF).subscription
    save_card(customer, DECLINES)
    mail.outbox.clear()
    return subscription


def renewal_invoice(customer: Customer) -> Invoice:
    return Invoice.objects.get(customer=customer, issued_on=D)


def attempt_days(invoice: Invoice) -> list[tuple[date, str, str]]:
    return [
        (a.created_at.astimezone(UTC).date(), a.status, a.decline_kind)
        for a in PaymentAttempt.objects.filter(invoice=invoice).order_by("attempt_number")
    ]


def subjects() -> list[str]:
    return [str(message.subject) for message in mail.outbox]


def dunning_events(subscription: Subscription) -> list[tuple[str, date, Any]]:
    return [
        (e.kind, e.effective_on, e.data.get("step") or e.data.get("attempt_number"))
        for e in SubscriptionEvent.objects.filter(
            subscription=subscription,
            kind__in=[SubscriptionEvent.Kind.PAYMENT_FAILED, SubscriptionEvent.Kind.RECOVERED],
        ).order_by("id")
    ]


def webhook_types() -> list[str]:
    return list(
        OutboxEvent.objects.filter(type__startswith="dunning.")
        .order_by("id")
        .values_list("type", flat=True)
    )


FAILED = "Your payment failed: we will try again"
WARNING = "Reminder: your invoice is overdue"
BLOCKED = "Your access is suspended until your invoice is paid"


def test_a_soft_decline_is_retried_on_schedule_escalates_and_cancels_on_day_14(
    customer: Customer, subscriber: Subscription
) -> None:
    # Day D: the renewal is declined; the case opens, the subscription is past due.
    advance(D)
    invoice = renewal_invoice(customer)
    case = DunningCase.objects.get()
    assert (case.invoice_id, case.customer_id, case.status, case.stage) == (
        invoice.pk,
        customer.pk,
        "open",
        "past_due",
    )
    assert list(case.subscriptions.values_list("pk", flat=True)) == [subscriber.pk]
    assert (case.first_failed_on, case.next_retry_on, case.attempts) == (D, date(2026, 2, 16), 1)
    assert (case.last_decline_code, case.last_decline_kind) == ("generic_decline", "soft")
    subscriber.refresh_from_db()
    assert subscriber.status == "past_due"
    assert subjects() == [FAILED]
    assert PAY_URL.format(invoice.pk) in mail.outbox[0].body
    assert "We will try again on February 16, 2026" in mail.outbox[0].body
    assert mail.outbox[0].to == [customer.email]
    assert customer_has_feature(customer=customer, feature_code="hd") is True

    # D+1 and D+2: one retry, then nothing.
    advance(date(2026, 2, 17))
    assert len(attempt_days(invoice)) == 2
    assert subjects() == [FAILED, FAILED]

    # D+3: retry and the warning stage.
    advance(date(2026, 2, 18))
    case.refresh_from_db()
    assert (case.stage, case.retries, case.next_retry_on) == ("warning", 2, date(2026, 2, 20))
    assert subjects() == [FAILED, FAILED, FAILED, WARNING]
    assert customer_has_feature(customer=customer, feature_code="hd") is True

    # D+6: access still on; D+7: the last retry fails and access goes off.
    advance(date(2026, 2, 21))
    assert customer_has_feature(customer=customer, feature_code="hd") is True
    advance(date(2026, 2, 22))
    case.refresh_from_db()
    assert (case.stage, case.retries, case.next_retry_on, case.attempts) == ("blocked", 4, None, 5)
    assert customer_has_feature(customer=customer, feature_code="hd") is False
    assert subjects() == [FAILED, FAILED, FAILED, WARNING, FAILED, FAILED, BLOCKED]
    assert attempt_days(invoice) == [
        (D, "declined", "soft"),
        (date(2026, 2, 16), "declined", "soft"),
        (date(2026, 2, 18), "declined", "soft"),
        (date(2026, 2, 20), "declined", "soft"),
        (date(2026, 2, 22), "declined", "soft"),
    ]

    # D+13: nothing more; D+14: canceled for non-payment.
    advance(date(2026, 2, 28))
    assert len(attempt_days(invoice)) == 5
    assert Subscription.objects.get(pk=subscriber.pk).status == "past_due"
    advance(date(2026, 3, 1))
    subscriber.refresh_from_db()
    assert (subscriber.status, subscriber.cancel_reason, subscriber.ended_on) == (
        "canceled",
        "unpaid",
        date(2026, 3, 1),
    )
    case.refresh_from_db()
    assert (case.status, case.outcome, case.next_retry_on) == ("closed", "canceled", None)
    assert subjects()[-1] == "Your subscription was canceled for non-payment"
    assert len(mail.outbox) == 8
    assert Invoice.objects.get(pk=invoice.pk).status == "open"  # still owed
    # The unpaid days were never paid: canceling for non-payment credits nothing.
    assert not CustomerBalanceTransaction.objects.filter(customer=customer).exists()
    assert not Invoice.objects.filter(
        customer=customer, billing_reason=Invoice.BillingReason.SUBSCRIPTION_CANCEL
    ).exists()
    assert customer_has_feature(customer=customer, feature_code="hd") is False

    assert dunning_events(subscriber) == [
        ("payment_failed", D, 1),
        ("payment_failed", date(2026, 2, 16), 2),
        ("payment_failed", date(2026, 2, 18), 3),
        ("payment_failed", date(2026, 2, 18), "warning"),
        ("payment_failed", date(2026, 2, 20), 4),
        ("payment_failed", date(2026, 2, 22), 5),
        ("payment_failed", date(2026, 2, 22), "blocked"),
    ]
    canceled = SubscriptionEvent.objects.filter(subscription=subscriber, kind="canceled").get()
    assert (canceled.effective_on, canceled.actor_label) == (date(2026, 3, 1), "dunning")
    assert webhook_types() == [
        "dunning.retry_scheduled",  # D
        "dunning.retry_scheduled",  # D+1
        "dunning.retry_scheduled",  # D+3
        "dunning.escalated",  # warning
        "dunning.retry_scheduled",  # D+5
        "dunning.escalated",  # blocked
        "dunning.final_action",
    ]

    # Later days: nothing more (no retry of a closed case, no renewal of a canceled one).
    advance(date(2026, 3, 20))
    assert len(attempt_days(invoice)) == 5
    assert len(mail.outbox) == 8


def test_a_new_card_pays_at_once_and_restores_the_blocked_subscription(
    customer: Customer, subscriber: Subscription
) -> None:
    advance(date(2026, 2, 23))
    assert customer_has_feature(customer=customer, feature_code="hd") is False
    mail.outbox.clear()

    save_card(customer, VISA)  # Feb 23: the immediate retry pays the invoice

    invoice = renewal_invoice(customer)
    assert Invoice.objects.get(pk=invoice.pk).status == "paid"
    assert attempt_days(invoice)[-1] == (date(2026, 2, 23), "succeeded", "")
    case = DunningCase.objects.get()
    assert (case.status, case.outcome, case.stage, case.next_retry_on) == (
        "closed",
        "recovered",
        "blocked",
        None,
    )
    subscriber.refresh_from_db()
    assert subscriber.status == "active"
    assert customer_has_feature(customer=customer, feature_code="hd") is True
    assert dunning_events(subscriber)[-1] == ("recovered", date(2026, 2, 23), None)
    assert subjects() == ["Payment received: thank you"]
    assert webhook_types()[-1] == "dunning.recovered"

    # The final day passes quietly; the next renewal is charged to the new card.
    advance(date(2026, 3, 16))
    subscriber.refresh_from_db()
    assert subscriber.status == "active"
    assert DunningCase.objects.count() == 1
    assert Invoice.objects.get(customer=customer, issued_on=date(2026, 3, 15)).status == "paid"
    assert subjects() == ["Payment received: thank you"]


def test_a_hard_decline_waits_for_a_new_payment_method(customer: Customer, pro: Plan) -> None:
    save_card(customer, VISA)
    subscription = subscription_create(customer=customer, plan=pro, actor=STAFF).subscription
    save_card(customer, STOLEN)
    mail.outbox.clear()

    advance(date(2026, 2, 21))

    invoice = renewal_invoice(customer)
    assert attempt_days(invoice) == [(D, "declined", "hard")]  # never retried
    case = DunningCase.objects.get()
    assert (case.stage, case.next_retry_on, case.retries, case.last_decline_kind) == (
        "warning",
        None,
        0,
        "hard",
    )
    assert subjects() == [
        "Your payment failed: please update your card",
        WARNING,
    ]
    assert "please add a new card" in mail.outbox[0].body
    assert "We will try again" not in mail.outbox[0].body
    assert "dunning.retry_scheduled" not in webhook_types()

    save_card(customer, VISA)  # Feb 21: retried at once, paid

    assert attempt_days(invoice) == [(D, "declined", "hard"), (date(2026, 2, 21), "succeeded", "")]
    case.refresh_from_db()
    assert (case.status, case.outcome) == ("closed", "recovered")
    assert Subscription.objects.get(pk=subscription.pk).status == "active"


def test_leave_unpaid_writes_the_invoice_off_and_keeps_the_subscription(
    settings: Any, customer: Customer, subscriber: Subscription
) -> None:
    settings.DUNNING_FINAL_ACTION = "leave_unpaid"

    advance(date(2026, 3, 1))

    invoice = renewal_invoice(customer)
    assert Invoice.objects.get(pk=invoice.pk).status == "uncollectible"
    case = DunningCase.objects.get()
    assert (case.status, case.outcome) == ("closed", "left_unpaid")
    subscriber.refresh_from_db()
    assert (subscriber.status, subscriber.ended_on) == ("active", None)
    assert customer_has_feature(customer=customer, feature_code="hd") is True
    assert subjects()[-1] == "Your invoice was closed unpaid"
    assert dunning_events(subscriber)[-2:] == [
        ("payment_failed", date(2026, 3, 1), "left_unpaid"),
        ("recovered", date(2026, 3, 1), None),
    ]
    assert webhook_types()[-1] == "dunning.final_action"


def test_running_a_day_twice_changes_nothing(customer: Customer, subscriber: Subscription) -> None:
    advance(date(2026, 2, 18))  # retries on D+1 and D+3, warning on D+3
    invoice = renewal_invoice(customer)
    case = DunningCase.objects.get()
    before = (
        attempt_days(invoice),
        len(mail.outbox),
        dunning_events(subscriber),
        webhook_types(),
        DunningCase.objects.values().get(),
    )

    assert dunning_process_day(date(2026, 2, 18)) == {}
    assert dunning_process_day(date(2026, 2, 18)) == {}

    after = (
        attempt_days(invoice),
        len(mail.outbox),
        dunning_events(subscriber),
        webhook_types(),
        DunningCase.objects.values().get(),
    )
    assert after == before
    assert case.pk == after[4]["id"]


def test_the_schedule_and_stages_follow_the_settings(
    settings: Any, customer: Customer, subscriber: Subscription
) -> None:
    settings.DUNNING_RETRY_DAYS = [2]
    settings.DUNNING_WARNING_AFTER_DAYS = 1
    settings.DUNNING_BLOCK_AFTER_DAYS = 2
    settings.DUNNING_FINAL_ACTION_AFTER_DAYS = 4

    advance(date(2026, 2, 16))
    case = DunningCase.objects.get()
    assert (case.stage, case.next_retry_on) == ("warning", date(2026, 2, 17))
    advance(date(2026, 2, 17))
    case.refresh_from_db()
    assert (case.stage, case.next_retry_on) == ("blocked", None)
    advance(date(2026, 2, 19))

    invoice = renewal_invoice(customer)
    assert [day for day, _, _ in attempt_days(invoice)] == [D, date(2026, 2, 17)]
    case.refresh_from_db()
    assert (case.status, case.outcome, case.closed_at) == (
        "closed",
        "canceled",
        datetime(2026, 2, 19, tzinfo=UTC),
    )
    assert Subscription.objects.get(pk=subscriber.pk).status == "canceled"


def test_an_invoice_without_subscriptions_opens_no_case(customer: Customer) -> None:
    from billing.services import invoice_create
    from billing.services.invoices import LineSpec

    save_card(customer, DECLINES)

    invoice = invoice_create(
        customer=customer,
        currency="USD",
        billing_reason="manual",
        lines=[LineSpec(kind="one_off", description="Setup", unit_amount=Decimal("10.00"))],
        actor=STAFF,
    )
    advance(date(2026, 1, 20))

    assert attempt_days(invoice) == [(date(2026, 1, 15), "declined", "soft")]
    assert not DunningCase.objects.exists()
    assert mail.outbox == []
