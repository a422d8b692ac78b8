"""The payment sweeper: what a worker that died mid-charge left behind is settled, and nothing
is charged twice.

A dead worker is played by running the steps of autocharge it got through and stopping there:
the claim (an attempt left pending), the gateway call, or not even the autocharge after the
invoice's commit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import close_old_connections, connection
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from billing.gateways.base import ChargeResult
from billing.gateways.simulated import SUCCEED, SimulatedGateway
from billing.ledger.models import JournalEntry
from billing.models import (
    Invoice,
    Payment,
    PaymentAttempt,
    PaymentMethod,
    SimulatedCard,
    SimulatedCharge,
)
from billing.services import invoice_create
from billing.services.payments import (
    AUTOCHARGE,
    _charge_many,
    _Claim,
    _claim,
    _claim_many,
    _record,
    payment_attempts_sweep,
)
from billing.tasks import payment_attempts_sweep as payment_attempts_sweep_task
from config.celery import app as celery_app
from core.models import AuditLog
from core.webhooks.models import OutboxEvent
from customers.models import Customer
from tests.conftest import FIXED_NOW

from .conftest import (
    DECLINE_AT_CHARGE,
    GENERIC_DECLINE,
    PROCESSING_ERROR,
    STAFF,
    TIMEOUT,
    VISA,
    line,
)

pytestmark = pytest.mark.django_db

D = Decimal
MakeCustomer = Callable[..., Customer]
SaveCard = Callable[..., PaymentMethod]
Bill = Callable[..., Invoice]
Capture = Callable[..., AbstractContextManager[list[Callable[[], Any]]]]
Clock = Callable[[Any], Any]


@pytest.fixture
def left_behind(clock: Any, django_capture_on_commit_callbacks: Capture) -> Callable[..., Invoice]:
    """`left_behind(customer)`: an invoice finalized by a worker that died right after the
    commit, before the autocharge that follows it."""

    def make(customer: Customer) -> Invoice:
        with django_capture_on_commit_callbacks(execute=False):
            invoice = invoice_create(
                customer=customer,
                currency="USD",
                billing_reason=Invoice.BillingReason.SUBSCRIPTION_CYCLE,
                lines=[line("Digital monthly", "31.00")],
                actor=STAFF,
            )
        invoice.refresh_from_db()
        return invoice

    return make


def _claimed(invoice: Invoice) -> _Claim:
    """The autocharge's claim of `invoice`, by a worker that dies after it: the attempt pending."""
    (claim,), waiting = _claim_many([(0, invoice.pk)], actor=AUTOCHARGE)
    assert waiting == []
    return claim


def _age(attempt: PaymentAttempt, minutes: int) -> None:
    """Claimed `minutes` ago by the wall clock (the one staleness is measured by)."""
    claimed_at = timezone.now() - timedelta(minutes=minutes)
    PaymentAttempt.objects.filter(pk=attempt.pk).update(claimed_at=claimed_at)


def _visa_customer(make_customer: MakeCustomer, save_card: SaveCard, card: str = VISA) -> Customer:
    customer = make_customer()
    save_card(customer, card)
    return customer


# --- attempts left pending ----------------------------------------------------------------------


def test_a_charge_made_before_the_worker_died_becomes_the_payment_and_is_not_made_again(
    make_customer: MakeCustomer,
    save_card: SaveCard,
    left_behind: Callable[..., Invoice],
    balance: Callable[..., Decimal],
    heard: list[int],
    django_capture_on_commit_callbacks: Capture,
) -> None:
    # given a charge the gateway made, whose worker died before recording it 16 minutes ago
    customer = _visa_customer(make_customer, save_card)
    invoice = left_behind(customer)
    claim = _claimed(invoice)
    _charge_many([claim])
    _age(claim.attempt, 16)
    assert balance("cash") == D("0")

    # when the sweeper runs
    with django_capture_on_commit_callbacks(execute=True):
        counts = payment_attempts_sweep()

    # then the charge is the invoice's payment, booked and announced, and was not made again
    assert counts == {"stale_attempts": 1, "succeeded": 1}
    attempt = PaymentAttempt.objects.get(invoice=invoice)
    assert (attempt.pk, attempt.status) == (claim.attempt.pk, "succeeded")
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_paid, invoice.amount_due) == ("paid", D("31"), D("0"))
    payment = Payment.objects.get(invoice=invoice)
    assert (payment.attempt_id, payment.amount) == (attempt.pk, D("31.00"))
    (charge,) = SimulatedCharge.objects.all()
    assert (charge.idempotency_key, charge.reference) == (
        attempt.idempotency_key,
        payment.gateway_reference,
    )
    assert balance("cash") == D("31.00")
    assert balance("accounts_receivable", customer) == D("0")
    types = set(OutboxEvent.objects.values_list("type", flat=True))
    assert {"payment.succeeded", "invoice.paid"} <= types
    assert heard == [invoice.pk]


def test_a_charge_the_gateway_never_saw_is_sent_once_with_the_same_key(
    make_customer: MakeCustomer, save_card: SaveCard, left_behind: Callable[..., Invoice]
) -> None:
    # given an attempt claimed 16 minutes ago by a worker that died before calling the gateway
    invoice = left_behind(_visa_customer(make_customer, save_card))
    claim = _claimed(invoice)
    _age(claim.attempt, 16)

    counts = payment_attempts_sweep()

    # then the same attempt, with its key, was charged once and paid the invoice
    assert counts == {"stale_attempts": 1, "sent_again": 1}
    (attempt,) = PaymentAttempt.objects.filter(invoice=invoice)
    assert (attempt.pk, attempt.status) == (claim.attempt.pk, "succeeded")
    assert attempt.idempotency_key == f"invoice-{invoice.pk}-attempt-1"
    assert list(SimulatedCharge.objects.values_list("idempotency_key", flat=True)) == [
        attempt.idempotency_key
    ]
    assert Payment.objects.get().invoice == invoice
    # marked unknown (the state a retry with the same key takes up), then sent again
    actions = AuditLog.objects.filter(
        object_type="billing.paymentattempt", object_id=str(attempt.pk)
    ).order_by("pk")
    assert list(actions.values_list("action", "actor_label")) == [
        ("payment_attempt.create", "autocharge"),
        ("payment_attempt.unknown", "payment sweeper"),
        ("payment_attempt.retry", "payment sweeper"),
        ("payment_attempt.succeeded", "payment sweeper"),
    ]


def test_a_pay_now_the_gateway_never_saw_is_sent_again_though_autocharge_would_skip_it(
    make_customer: MakeCustomer, save_card: SaveCard, left_behind: Callable[..., Invoice]
) -> None:
    # given a customer who pays by invoice, whose pay-now died after its claim
    customer = make_customer(autocharge=False)
    method = save_card(customer, VISA)
    invoice = left_behind(customer)
    attempt = _claim(invoice, method, trigger=PaymentAttempt.Trigger.PAY_NOW, actor=STAFF)
    _age(attempt, 16)

    counts = payment_attempts_sweep()

    # then reconciliation sent it again with its key (autocharge takes up autocharge only)
    assert counts == {"stale_attempts": 1, "sent_again": 1}
    attempt.refresh_from_db()
    assert (attempt.status, attempt.trigger) == ("succeeded", "pay_now")
    assert SimulatedCharge.objects.get().idempotency_key == attempt.idempotency_key
    invoice.refresh_from_db()
    assert invoice.status == "paid"


def test_a_decline_made_before_the_worker_died_is_recorded_for_dunning(
    make_customer: MakeCustomer,
    save_card: SaveCard,
    left_behind: Callable[..., Invoice],
    heard: list[int],
    django_capture_on_commit_callbacks: Capture,
) -> None:
    invoice = left_behind(_visa_customer(make_customer, save_card, DECLINE_AT_CHARGE))
    claim = _claimed(invoice)
    _charge_many([claim])
    _age(claim.attempt, 16)

    with django_capture_on_commit_callbacks(execute=True):
        counts = payment_attempts_sweep()

    assert counts == {"stale_attempts": 1, "declined": 1}
    attempt = PaymentAttempt.objects.get(invoice=invoice)
    assert (attempt.status, attempt.decline_code, attempt.decline_kind) == (
        "declined",
        "generic_decline",
        "soft",
    )
    assert SimulatedCharge.objects.count() == 1
    assert "payment.failed" in set(OutboxEvent.objects.values_list("type", flat=True))
    assert heard == [invoice.pk]


def test_an_attempt_pending_for_less_than_the_stale_period_is_left_alone(
    make_customer: MakeCustomer,
    save_card: SaveCard,
    left_behind: Callable[..., Invoice],
    clock: Clock,
) -> None:
    # given an attempt claimed 14 minutes ago (wall clock), its worker maybe still charging
    invoice = left_behind(_visa_customer(make_customer, save_card))
    claim = _claimed(invoice)
    _age(claim.attempt, 14)
    # and a platform clock moved on a day meanwhile: staleness is real elapsed time
    clock(FIXED_NOW + timedelta(days=1))

    counts = payment_attempts_sweep()

    assert counts == {}
    claim.attempt.refresh_from_db()
    assert claim.attempt.status == "pending"
    assert not SimulatedCharge.objects.exists()

    # and a shorter stale period, given, settles it
    assert payment_attempts_sweep(stale_after=timedelta(minutes=10)) == {
        "stale_attempts": 1,
        "sent_again": 1,
    }


def test_a_worker_recording_late_wins_and_the_sweeper_records_nothing_twice(
    make_customer: MakeCustomer,
    save_card: SaveCard,
    left_behind: Callable[..., Invoice],
    balance: Callable[..., Decimal],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a stale attempt charged at the gateway, whose slow worker records its outcome
    # while the sweeper is asking the gateway about the key
    invoice = left_behind(_visa_customer(make_customer, save_card))
    claim = _claimed(invoice)
    (answer,) = _charge_many([claim]).values()
    _age(claim.attempt, 16)
    lookup = SimulatedGateway.lookup_charge

    def late_worker_records(self: SimulatedGateway, **kwargs: Any) -> ChargeResult | None:
        found = lookup(self, **kwargs)
        _record(claim.attempt.pk, answer, actor=AUTOCHARGE)
        return found

    monkeypatch.setattr(SimulatedGateway, "lookup_charge", late_worker_records)

    counts = payment_attempts_sweep()

    # then the sweeper, seeing it settled under the lock, left it: one payment, one booking
    assert counts == {"stale_attempts": 1}
    assert Payment.objects.get().attempt_id == claim.attempt.pk
    assert balance("cash") == D("31.00")
    succeeded = AuditLog.objects.filter(action="payment_attempt.succeeded")
    assert list(succeeded.values_list("actor_label", flat=True)) == ["autocharge"]


@pytest.mark.django_db(transaction=True)
def test_two_sweepers_at_once_settle_each_attempt_once(
    make_customer: MakeCustomer, save_card: SaveCard, clock: Any
) -> None:
    # given six stale attempts: three charged at the gateway, three never sent (the invoices
    # are billed before the cards are saved: here commits run the autocharge for real)
    claims = []
    for _ in range(6):
        customer = make_customer()
        invoice = invoice_create(
            customer=customer,
            currency="USD",
            billing_reason=Invoice.BillingReason.SUBSCRIPTION_CYCLE,
            lines=[line("Digital monthly", "31.00")],
            actor=STAFF,
        )
        save_card(customer, VISA)
        claims.append(_claimed(invoice))
    _charge_many(claims[:3])
    for claim in claims:
        _age(claim.attempt, 16)
    # both sweepers read them and ask the gateway before either records anything
    both_asked = threading.Barrier(2, timeout=20)
    asked: set[int] = set()
    lookup = SimulatedGateway.lookup_charge

    def lookup_together(self: SimulatedGateway, **kwargs: Any) -> ChargeResult | None:
        if threading.get_ident() not in asked:
            asked.add(threading.get_ident())
            both_asked.wait()
        return lookup(self, **kwargs)

    counts: list[dict[str, int]] = []  # a sweeper that raised reports nothing

    def sweep() -> None:
        try:
            counts.append(payment_attempts_sweep())
        finally:
            connection.close()

    # when two sweepers run at the same time
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SimulatedGateway, "lookup_charge", lookup_together)
        threads = [threading.Thread(target=sweep) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    close_old_connections()

    # then each attempt was settled once: one charge per key, one payment per invoice
    assert len(counts) == 2
    assert sum(c.get("succeeded", 0) + c.get("sent_again", 0) for c in counts) == 6
    attempts = PaymentAttempt.objects.filter(pk__in=[c.attempt.pk for c in claims])
    assert set(attempts.values_list("status", flat=True)) == {"succeeded"}
    assert PaymentAttempt.objects.count() == 6
    assert SimulatedCharge.objects.count() == 6
    assert sorted(Payment.objects.values_list("invoice_id", flat=True)) == sorted(
        c.attempt.invoice_id for c in claims
    )
    assert AuditLog.objects.filter(action="payment_attempt.succeeded").count() == 6


# --- outcomes left unknown ----------------------------------------------------------------------


def _unknown(invoice: Invoice) -> PaymentAttempt:
    """Autocharged, and the gateway's answer lost (a timeout, a processing error): unknown."""
    claim = _claimed(invoice)
    results = _charge_many([claim])
    attempt = _record(claim.attempt.pk, results[claim.attempt.pk], actor=AUTOCHARGE)
    assert attempt.status == "unknown"
    return attempt


def test_an_unknown_outcome_the_gateway_charged_becomes_the_payment(
    make_customer: MakeCustomer,
    save_card: SaveCard,
    left_behind: Callable[..., Invoice],
    heard: list[int],
    django_capture_on_commit_callbacks: Capture,
) -> None:
    # given a charge that timed out 16 minutes ago, though the gateway made it
    invoice = left_behind(_visa_customer(make_customer, save_card, TIMEOUT))
    attempt = _unknown(invoice)
    _age(attempt, 16)

    with django_capture_on_commit_callbacks(execute=True):
        counts = payment_attempts_sweep()

    # then the gateway's charge is the payment, and nothing was charged again
    assert counts == {"unknown_attempts": 1, "succeeded": 1}
    attempt.refresh_from_db()
    assert attempt.status == "succeeded"
    assert Payment.objects.get().attempt_id == attempt.pk
    assert SimulatedCharge.objects.count() == 1
    invoice.refresh_from_db()
    assert invoice.status == "paid"
    assert heard == [invoice.pk]


def test_an_unknown_outcome_the_gateway_never_charged_is_sent_once_with_its_key(
    make_customer: MakeCustomer, save_card: SaveCard, left_behind: Callable[..., Invoice]
) -> None:
    # given a processing error 16 minutes ago (nothing charged), the gateway working again since
    invoice = left_behind(_visa_customer(make_customer, save_card, PROCESSING_ERROR))
    attempt = _unknown(invoice)
    _age(attempt, 16)
    SimulatedCard.objects.update(behavior=SUCCEED)

    counts = payment_attempts_sweep()

    # then the same attempt, with its key, charged the invoice once
    assert counts == {"unknown_attempts": 1, "succeeded": 1}
    (again,) = PaymentAttempt.objects.filter(invoice=invoice)
    assert (again.pk, again.status) == (attempt.pk, "succeeded")
    assert list(SimulatedCharge.objects.values_list("idempotency_key", flat=True)) == [
        attempt.idempotency_key
    ]
    invoice.refresh_from_db()
    assert invoice.status == "paid"
    # and a second sweep finds nothing left
    assert payment_attempts_sweep() == {}


def test_an_unknown_outcome_younger_than_the_stale_period_is_left_alone(
    make_customer: MakeCustomer, save_card: SaveCard, left_behind: Callable[..., Invoice]
) -> None:
    invoice = left_behind(_visa_customer(make_customer, save_card, TIMEOUT))
    attempt = _unknown(invoice)
    _age(attempt, 14)

    assert payment_attempts_sweep() == {}
    attempt.refresh_from_db()
    assert attempt.status == "unknown"
    assert not Payment.objects.exists()


def test_an_unknown_outcome_the_gateway_cannot_be_asked_about_waits_for_the_next_sweep(
    make_customer: MakeCustomer,
    save_card: SaveCard,
    left_behind: Callable[..., Invoice],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    invoice = left_behind(_visa_customer(make_customer, save_card, TIMEOUT))
    attempt = _unknown(invoice)
    _age(attempt, 16)

    def unreachable(self: SimulatedGateway, **_: Any) -> ChargeResult | None:
        raise ConnectionError("the gateway is down")

    monkeypatch.setattr(SimulatedGateway, "lookup_charge", unreachable)
    assert payment_attempts_sweep() == {"unknown_attempts": 1, "failed": 1}
    attempt.refresh_from_db()
    assert attempt.status == "unknown"

    monkeypatch.undo()
    assert payment_attempts_sweep() == {"unknown_attempts": 1, "succeeded": 1}


# --- invoices never attempted -------------------------------------------------------------------


def test_an_open_autocharge_invoice_never_attempted_is_charged(
    make_customer: MakeCustomer,
    save_card: SaveCard,
    left_behind: Callable[..., Invoice],
    clock: Clock,
) -> None:
    # given an invoice whose worker died before its autocharge, finalized 16 minutes ago
    old = left_behind(_visa_customer(make_customer, save_card))
    clock(FIXED_NOW + timedelta(minutes=16))
    # and one finalized just now, whose autocharge may still be on its way
    recent = left_behind(_visa_customer(make_customer, save_card))

    counts = payment_attempts_sweep()

    assert counts == {"unattempted_invoices": 1, "invoices_charged": 1}
    attempt = PaymentAttempt.objects.get(invoice=old)
    assert (attempt.trigger, attempt.status) == ("autocharge", "succeeded")
    old.refresh_from_db()
    assert old.status == "paid"
    assert not PaymentAttempt.objects.filter(invoice=recent).exists()
    assert SimulatedCharge.objects.count() == 1


def test_an_invoice_with_a_declined_attempt_is_left_to_dunning(
    make_customer: MakeCustomer, save_card: SaveCard, bill: Bill, clock: Clock
) -> None:
    customer = _visa_customer(make_customer, save_card, GENERIC_DECLINE)
    invoice = bill(customer, line("Digital monthly", "31.00"))
    clock(FIXED_NOW + timedelta(days=1))

    assert payment_attempts_sweep() == {}

    assert list(PaymentAttempt.objects.filter(invoice=invoice).values_list("status")) == [
        ("declined",)
    ]
    assert SimulatedCharge.objects.count() == 1


def test_invoices_the_sweeper_cannot_charge_are_not_picked_up(
    make_customer: MakeCustomer,
    save_card: SaveCard,
    left_behind: Callable[..., Invoice],
    clock: Clock,
) -> None:
    # a customer who pays by invoice, and one without a card
    pays_by_invoice = make_customer(autocharge=False)
    save_card(pays_by_invoice, VISA)
    left_behind(pays_by_invoice)
    left_behind(make_customer())
    clock(FIXED_NOW + timedelta(days=1))

    assert payment_attempts_sweep() == {}
    assert not PaymentAttempt.objects.exists()


# --- twice, and on the schedule -----------------------------------------------------------------


def test_a_second_sweep_changes_nothing(
    make_customer: MakeCustomer,
    save_card: SaveCard,
    left_behind: Callable[..., Invoice],
    bill: Bill,
    clock: Clock,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    # given one of each: charged and never recorded, never sent, never attempted, declined,
    # and pending but not stale
    charged = _claimed(left_behind(_visa_customer(make_customer, save_card)))
    _charge_many([charged])
    never_sent = _claimed(left_behind(_visa_customer(make_customer, save_card)))
    left_behind(_visa_customer(make_customer, save_card))
    bill(_visa_customer(make_customer, save_card, GENERIC_DECLINE), line())
    fresh = _claimed(left_behind(_visa_customer(make_customer, save_card)))
    for claim in (charged, never_sent):
        _age(claim.attempt, 16)
    clock(FIXED_NOW + timedelta(minutes=16))
    _age(fresh.attempt, 1)
    with django_capture_on_commit_callbacks(execute=True):
        first = payment_attempts_sweep()

    def state() -> dict[str, Any]:
        return {
            "attempts": sorted(PaymentAttempt.objects.values_list("pk", "status", "claimed_at")),
            "invoices": sorted(Invoice.objects.values_list("pk", "status", "amount_due")),
            "payments": Payment.objects.count(),
            "charges": SimulatedCharge.objects.count(),
            "entries": JournalEntry.objects.count(),
            "audit": AuditLog.objects.count(),
            "events": OutboxEvent.objects.count(),
        }

    before = state()
    with django_capture_on_commit_callbacks(execute=True):
        second = payment_attempts_sweep()

    assert first == {
        "stale_attempts": 2,
        "succeeded": 1,
        "sent_again": 1,
        "unattempted_invoices": 1,
        "invoices_charged": 1,
    }
    assert second == {}
    assert state() == before
    assert before["payments"] == 3
    fresh.attempt.refresh_from_db()
    assert fresh.attempt.status == "pending"


def test_the_sweeper_runs_every_ten_minutes_from_the_database_schedule() -> None:
    task = PeriodicTask.objects.get(task="billing.tasks.payment_attempts_sweep")

    assert task.name == "payments: settle charges a dead worker left behind"
    assert task.enabled is True
    assert task.interval is not None
    assert (task.interval.every, task.interval.period) == (10, IntervalSchedule.MINUTES)


def test_the_task_is_registered_acknowledged_late_and_reports_what_the_sweep_did(
    make_customer: MakeCustomer, save_card: SaveCard, left_behind: Callable[..., Invoice]
) -> None:
    celery_app.loader.import_default_modules()
    registered = celery_app.tasks[payment_attempts_sweep_task.name]
    assert payment_attempts_sweep_task.name == "billing.tasks.payment_attempts_sweep"
    assert registered.acks_late is True

    _age(_claimed(left_behind(_visa_customer(make_customer, save_card))).attempt, 16)

    assert payment_attempts_sweep_task() == {"stale_attempts": 1, "sent_again": 1}
