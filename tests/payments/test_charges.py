"""Charging invoices through the simulated gateway: test cards, declines, unknown outcomes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from billing.ledger.models import JournalEntry
from billing.models import (
    Invoice,
    Payment,
    PaymentAttempt,
    PaymentMethod,
    SimulatedCard,
    SimulatedCharge,
)
from billing.services import (
    invoice_pay_now,
    payment_attempt_reconcile,
    payment_method_attach,
    payment_retry_blocked,
)
from core.errors import ConflictError, ValidationError
from core.models import AuditLog
from customers.models import Customer

from .conftest import (
    DECLINE_AT_CHARGE,
    GENERIC_DECLINE,
    INSUFFICIENT_FUNDS,
    PROCESSING_ERROR,
    STAFF,
    STOLEN,
    TIMEOUT,
    VISA,
    line,
)

pytestmark = pytest.mark.django_db

D = Decimal
SaveCard = Callable[..., PaymentMethod]
Bill = Callable[..., Invoice]


@pytest.fixture
def invoice_customer(make_customer: Callable[..., Customer]) -> Customer:
    """A customer paying by invoice: nothing is charged at finalization."""
    return make_customer(autocharge=False)


def _open_invoice(bill: Bill, customer: Customer, amount: str = "31.00") -> Invoice:
    invoice = bill(customer, line("Digital monthly", amount))
    assert invoice.status == Invoice.Status.OPEN
    return invoice


# --- saving cards ---------------------------------------------------------------------------------


def test_a_card_is_saved_as_a_token_and_its_number_is_kept_nowhere(
    customer: Customer, save_card: SaveCard
) -> None:
    method = save_card(customer, "4242 4242 4242 4242", exp_month=4, exp_year=31)

    assert (method.gateway, method.brand, method.last4, method.exp_month, method.exp_year) == (
        "simulated",
        "visa",
        "4242",
        4,
        2031,
    )
    assert method.reference.startswith("simtok_")
    assert method.is_default
    card = SimulatedCard.objects.get(token=method.reference)
    assert (card.behavior, card.last4) == ("succeed", "4242")
    stored = [
        *PaymentMethod.objects.values_list(),
        *SimulatedCard.objects.values_list(),
        *AuditLog.objects.values_list("before", "after"),
    ]
    assert VISA not in repr(stored)


@pytest.mark.parametrize(
    ("number", "exp", "code", "param"),
    [
        ("4242424242424241", (12, 2030), "invalid_number", "card_number"),
        ("4242", (12, 2030), "invalid_number", "card_number"),
        ("not a number", (12, 2030), "invalid_number", "card_number"),
        (VISA, (12, 2025), "expired_card", "exp_year"),
        (VISA, (13, 2030), "invalid_expiry", "exp_month"),
    ],
)
def test_a_bad_card_is_refused_without_repeating_its_number(
    customer: Customer, number: str, exp: tuple[int, int], code: str, param: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        payment_method_attach(
            customer=customer, card_number=number, exp_month=exp[0], exp_year=exp[1], actor=STAFF
        )

    assert (refused.value.code, refused.value.param) == (code, param)
    assert number not in refused.value.message
    assert not PaymentMethod.objects.exists()


def test_a_new_card_becomes_the_only_default(customer: Customer, save_card: SaveCard) -> None:
    first = save_card(customer)
    second = save_card(customer, "5555555555554444")
    kept = save_card(customer, VISA, make_default=False)

    first.refresh_from_db()
    assert [first.is_default, second.is_default, kept.is_default] == [False, True, False]
    assert second.brand == "mastercard"


# --- charges --------------------------------------------------------------------------------------


def test_pay_now_with_the_succeeding_card_pays_the_invoice_and_books_it(
    invoice_customer: Customer, save_card: SaveCard, bill: Bill
) -> None:
    method = save_card(invoice_customer)
    invoice = _open_invoice(bill, invoice_customer)

    attempt = invoice_pay_now(invoice=invoice, actor=STAFF)

    assert (attempt.status, attempt.attempt_number, attempt.amount, attempt.payment_method) == (
        "succeeded",
        1,
        D("31.00"),
        method,
    )
    assert attempt.idempotency_key == f"invoice-{invoice.pk}-attempt-1"
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_paid, invoice.amount_due) == ("paid", D("31"), D("0"))
    payment = Payment.objects.get()
    assert (payment.amount, payment.method, payment.gateway, payment.attempt) == (
        D("31.00"),
        "card",
        "simulated",
        attempt,
    )
    assert payment.gateway_reference == SimulatedCharge.objects.get().reference
    assert JournalEntry.objects.filter(idempotency_key=f"payment:{payment.pk}").exists()


@pytest.mark.parametrize(
    ("number", "code"),
    [
        (GENERIC_DECLINE, "generic_decline"),
        (INSUFFICIENT_FUNDS, "insufficient_funds"),
        (DECLINE_AT_CHARGE, "generic_decline"),
    ],
)
def test_a_soft_decline_leaves_the_invoice_open_and_may_be_retried(
    invoice_customer: Customer, save_card: SaveCard, bill: Bill, number: str, code: str
) -> None:
    method = save_card(invoice_customer, number)
    invoice = _open_invoice(bill, invoice_customer)

    first = invoice_pay_now(invoice=invoice, actor=STAFF)
    second = invoice_pay_now(invoice=invoice, actor=STAFF)

    assert [(a.status, a.decline_code, a.decline_kind) for a in (first, second)] == [
        ("declined", code, "soft"),
        ("declined", code, "soft"),
    ]
    assert second.idempotency_key == f"invoice-{invoice.pk}-attempt-2"
    assert not payment_retry_blocked(invoice=invoice, payment_method=method)
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_due, invoice.amount_paid) == ("open", D("31"), D("0"))
    assert not Payment.objects.exists()
    assert not JournalEntry.objects.filter(source_type="payment").exists()


def test_a_hard_decline_is_not_retried_until_the_payment_method_changes(
    invoice_customer: Customer, save_card: SaveCard, bill: Bill
) -> None:
    stolen = save_card(invoice_customer, STOLEN)
    invoice = _open_invoice(bill, invoice_customer)
    declined = invoice_pay_now(invoice=invoice, actor=STAFF)
    assert (declined.status, declined.decline_code, declined.decline_kind) == (
        "declined",
        "stolen_card",
        "hard",
    )

    with pytest.raises(ConflictError) as refused:
        invoice_pay_now(invoice=invoice, actor=STAFF)

    assert refused.value.code == "payment_retry_blocked"
    assert payment_retry_blocked(invoice=invoice, payment_method=stolen)
    assert PaymentAttempt.objects.count() == 1
    assert SimulatedCharge.objects.count() == 1

    # A new card is another method: it may be charged.
    fresh = save_card(invoice_customer, VISA)
    attempt = invoice_pay_now(invoice=invoice, actor=STAFF, payment_method=fresh)
    assert (attempt.status, attempt.attempt_number) == ("succeeded", 2)


def test_a_card_declined_hard_is_not_charged_for_the_next_invoice_either(
    customer: Customer, save_card: SaveCard, bill: Bill
) -> None:
    save_card(customer, STOLEN)
    first = bill(customer, line("Digital monthly", "31.00"))

    second = bill(customer, line("Digital monthly", "31.00"))

    assert (first.status, second.status) == ("open", "open")
    assert list(PaymentAttempt.objects.values_list("invoice_id", "decline_kind")) == [
        (first.pk, "hard")
    ]
    assert SimulatedCharge.objects.count() == 1


def test_a_new_default_card_after_a_hard_decline_retries_open_autocharge_invoices_at_once(
    customer: Customer, save_card: SaveCard, bill: Bill
) -> None:
    save_card(customer, STOLEN)
    invoice = bill(customer, line("Digital monthly", "31.00"))
    assert invoice.status == "open"
    assert PaymentAttempt.objects.get().decline_kind == "hard"

    save_card(customer, VISA)

    invoice.refresh_from_db()
    assert invoice.status == "paid"
    assert list(PaymentAttempt.objects.order_by("id").values_list("status", "trigger")) == [
        ("declined", "autocharge"),
        ("succeeded", "autocharge"),
    ]


def test_a_timeout_leaves_the_outcome_unknown_and_reconciliation_finds_the_charge(
    invoice_customer: Customer, save_card: SaveCard, bill: Bill
) -> None:
    save_card(invoice_customer, TIMEOUT)
    invoice = _open_invoice(bill, invoice_customer)

    attempt = invoice_pay_now(invoice=invoice, actor=STAFF)

    assert (attempt.status, attempt.error_message) == (
        "unknown",
        "The gateway did not answer in time.",
    )
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_paid) == ("open", D("0"))
    assert not Payment.objects.exists()
    # The gateway did charge: it has the charge under the attempt's key.
    assert SimulatedCharge.objects.get().idempotency_key == attempt.idempotency_key

    settled = payment_attempt_reconcile(attempt=attempt, actor=STAFF)

    assert settled.status == "succeeded"
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_paid) == ("paid", D("31.00"))
    assert Payment.objects.get().gateway_reference == SimulatedCharge.objects.get().reference
    assert SimulatedCharge.objects.count() == 1


def test_a_retry_after_a_timeout_reuses_the_key_and_charges_once(
    invoice_customer: Customer, save_card: SaveCard, bill: Bill
) -> None:
    save_card(invoice_customer, TIMEOUT)
    invoice = _open_invoice(bill, invoice_customer)
    unknown = invoice_pay_now(invoice=invoice, actor=STAFF)
    assert unknown.status == "unknown"

    retried = invoice_pay_now(invoice=invoice, actor=STAFF)

    assert retried.pk == unknown.pk
    assert (retried.status, retried.idempotency_key) == (
        "succeeded",
        f"invoice-{invoice.pk}-attempt-1",
    )
    assert SimulatedCharge.objects.count() == 1
    assert Payment.objects.count() == 1
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_paid) == ("paid", D("31.00"))


def test_a_processing_error_charged_nothing_so_reconciliation_sends_the_same_key_again(
    invoice_customer: Customer, save_card: SaveCard, bill: Bill
) -> None:
    save_card(invoice_customer, PROCESSING_ERROR)
    invoice = _open_invoice(bill, invoice_customer)
    attempt = invoice_pay_now(invoice=invoice, actor=STAFF)
    assert attempt.status == "unknown"
    assert not SimulatedCharge.objects.exists()

    again = payment_attempt_reconcile(attempt=attempt, actor=STAFF)

    assert (again.pk, again.status, again.idempotency_key) == (
        attempt.pk,
        "unknown",
        attempt.idempotency_key,
    )
    assert PaymentAttempt.objects.count() == 1
    assert not SimulatedCharge.objects.exists()
    assert not Payment.objects.exists()


def test_while_an_outcome_is_unknown_nothing_may_change_what_is_due(
    invoice_customer: Customer, save_card: SaveCard, bill: Bill
) -> None:
    from billing.services import credit_note_create, invoice_void, payment_record_offline

    save_card(invoice_customer, TIMEOUT)
    invoice = _open_invoice(bill, invoice_customer)
    invoice_pay_now(invoice=invoice, actor=STAFF)

    for change in (
        lambda: invoice_void(invoice=invoice, actor=STAFF),
        lambda: credit_note_create(invoice=invoice, actor=STAFF, outcome="reduce_amount_due"),
        lambda: payment_record_offline(
            invoice=invoice,
            amount=D("31.00"),
            method="cheque",
            reference="",
            received_on=date(2026, 1, 15),
            actor=STAFF,
        ),
    ):
        with pytest.raises(ConflictError) as refused:
            change()
        assert refused.value.code == "payment_in_progress"
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_due) == ("open", D("31.00"))


def test_a_reconciliation_is_only_for_unknown_outcomes(
    invoice_customer: Customer, save_card: SaveCard, bill: Bill
) -> None:
    save_card(invoice_customer)
    attempt = invoice_pay_now(invoice=_open_invoice(bill, invoice_customer), actor=STAFF)

    with pytest.raises(ConflictError) as refused:
        payment_attempt_reconcile(attempt=attempt, actor=STAFF)

    assert refused.value.code == "attempt_not_unknown"


@pytest.mark.parametrize(
    ("setup", "code"),
    [
        ("paid", "invoice_not_open"),
        ("no_card", "no_payment_method"),
        ("detached", "payment_method_detached"),
    ],
)
def test_pay_now_refusals(
    invoice_customer: Customer, save_card: SaveCard, bill: Bill, setup: str, code: str
) -> None:
    from billing.services import payment_method_detach

    invoice = _open_invoice(bill, invoice_customer)
    if setup != "no_card":
        method = save_card(invoice_customer)
    if setup == "paid":
        invoice_pay_now(invoice=invoice, actor=STAFF)
    if setup == "detached":
        payment_method_detach(payment_method=method, actor=STAFF)
        method.refresh_from_db()
        with pytest.raises((ConflictError, ValidationError)) as refused:
            invoice_pay_now(invoice=invoice, actor=STAFF, payment_method=method)
        assert refused.value.code == code
        return

    with pytest.raises((ConflictError, ValidationError)) as refused:
        invoice_pay_now(invoice=invoice, actor=STAFF)

    assert refused.value.code == code


def test_the_gateway_is_called_outside_any_transaction(
    invoice_customer: Customer, save_card: SaveCard, bill: Bill, monkeypatch: Any
) -> None:
    from django.db import connection

    from billing.gateways.simulated import SimulatedGateway

    seen: list[int] = []
    real_charge = SimulatedGateway.charge

    def charge(self: SimulatedGateway, **kwargs: Any) -> Any:
        # The test's own transaction is the only one open (pytest-django wraps each test).
        seen.append(len(connection.atomic_blocks))
        return real_charge(self, **kwargs)

    monkeypatch.setattr(SimulatedGateway, "charge", charge)
    save_card(invoice_customer)

    invoice_pay_now(invoice=_open_invoice(bill, invoice_customer), actor=STAFF)

    assert seen == [1]
