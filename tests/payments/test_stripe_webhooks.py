"""Stripe's webhooks in: signature, raw event stored first, processed once, what each does."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
import stripe
from rest_framework.test import APIClient

from billing.ledger.models import AccountCode as A
from billing.models import (
    Dispute,
    Invoice,
    Payment,
    PaymentAttempt,
    Refund,
    StripeEvent,
)
from billing.selectors import ledger_reconciliation
from billing.services import invoice_pay_now, payment_method_attach
from core.models import AuditLog
from customers.models import Customer

from .conftest import STAFF, STRIPE_WEBHOOK_SECRET, VISA, _free_port, line

pytestmark = pytest.mark.django_db

D = Decimal
URL = "/api/v1/webhooks/stripe"
Bill = Callable[..., Invoice]
Balance = Callable[..., Decimal]


def _signed(payload: bytes, secret: str = STRIPE_WEBHOOK_SECRET, at: int | None = None) -> str:
    timestamp = int(time.time()) if at is None else at  # Stripe signs with wall-clock time
    signature = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256
    ).hexdigest()
    return f"t={timestamp},v1={signature}"


def _event(event_id: str, kind: str, obj: dict[str, Any]) -> bytes:
    return json.dumps(
        {"id": event_id, "object": "event", "type": kind, "data": {"object": obj}}
    ).encode()


def _deliver(payload: bytes, signature: str | None = None) -> Any:
    return APIClient().post(
        URL,
        payload,
        content_type="application/json",
        headers={"Stripe-Signature": signature if signature is not None else _signed(payload)},
    )


@pytest.fixture
def stripe_payment(
    customer: Customer,
    stripe_gateway: stripe.StripeClient,
    stripe_card: Callable[[str], str],
    bill: Bill,
) -> Payment:
    """31.00 USD paid by card through Stripe (localstripe) at finalization."""
    payment_method_attach(
        customer=customer, payment_method_reference=stripe_card(VISA), actor=STAFF
    )
    bill(customer, line("Digital monthly", "31.00"))
    return Payment.objects.get()


# --- verification and storage ---------------------------------------------------------------------


def test_a_bad_signature_is_refused_and_nothing_is_stored(stripe_gateway: Any) -> None:
    payload = _event("evt_1", "payment_intent.succeeded", {"id": "pi_x", "metadata": {}})

    for signature in (_signed(payload, secret="whsec_wrong"), "", "t=1,v1=00"):
        response = _deliver(payload, signature)

        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_signature"
    assert not StripeEvent.objects.exists()


def test_an_old_signature_is_refused(stripe_gateway: Any) -> None:
    payload = _event("evt_1", "payment_intent.succeeded", {"id": "pi_x", "metadata": {}})

    response = _deliver(payload, _signed(payload, at=int(time.time()) - 3600))

    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_signature")


def test_an_event_about_nothing_of_ours_is_stored_and_ignored(stripe_gateway: Any) -> None:
    payload = _event("evt_2", "customer.created", {"id": "cus_x"})

    response = _deliver(payload)

    assert response.status_code == 200
    assert response.json() == {
        "id": "evt_2",
        "type": "customer.created",
        "status": "ignored",
        "error": "",
    }
    event = StripeEvent.objects.get()
    assert (event.event_id, event.payload["data"]["object"]["id"]) == ("evt_2", "cus_x")


def test_without_a_webhook_secret_webhooks_are_refused(settings: Any) -> None:
    settings.STRIPE_WEBHOOK_SECRET = ""
    payload = _event("evt_3", "customer.created", {"id": "cus_x"})

    response = _deliver(payload, _signed(payload))

    assert (response.status_code, response.json()["error"]["code"]) == (
        400,
        "webhook_not_configured",
    )


def test_the_endpoint_needs_no_api_key_and_ignores_one(stripe_gateway: Any) -> None:
    payload = _event("evt_4", "customer.created", {"id": "cus_x"})
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer sk_test_not-a-key")

    response = client.post(
        URL,
        payload,
        content_type="application/json",
        headers={"Stripe-Signature": _signed(payload)},
    )

    assert response.status_code == 200


# --- payment intents ------------------------------------------------------------------------------


def _unknown_attempt(
    customer: Customer, stripe_card: Callable[[str], str], bill: Bill, settings: Any
) -> PaymentAttempt:
    customer.autocharge = False
    customer.save(update_fields=["autocharge"])
    payment_method_attach(
        customer=customer, payment_method_reference=stripe_card(VISA), actor=STAFF
    )
    invoice = bill(customer, line("Digital monthly", "31.00"))
    base = settings.STRIPE_API_BASE
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{_free_port()}"
    attempt = invoice_pay_now(invoice=invoice, actor=STAFF)
    settings.STRIPE_API_BASE = base
    assert attempt.status == "unknown"
    return attempt


def test_payment_intent_succeeded_settles_an_unknown_attempt_once(
    customer: Customer, stripe_gateway: Any, stripe_card: Any, bill: Bill, settings: Any
) -> None:
    attempt = _unknown_attempt(customer, stripe_card, bill, settings)
    payload = _event(
        "evt_pi_1",
        "payment_intent.succeeded",
        {"id": "pi_reached", "metadata": {"idempotency_key": attempt.idempotency_key}},
    )

    first = _deliver(payload)
    again = _deliver(payload)

    assert [first.json()["status"], again.json()["status"]] == ["processed", "processed"]
    attempt.refresh_from_db()
    assert (attempt.status, attempt.gateway_reference) == ("succeeded", "pi_reached")
    assert Payment.objects.get().gateway_reference == "pi_reached"
    assert StripeEvent.objects.count() == 1
    assert AuditLog.objects.filter(action="payment.create").count() == 1
    attempt.invoice.refresh_from_db()
    assert attempt.invoice.status == "paid"
    assert ledger_reconciliation().mismatches == []


def test_payment_intent_payment_failed_records_the_decline(
    customer: Customer, stripe_gateway: Any, stripe_card: Any, bill: Bill, settings: Any
) -> None:
    attempt = _unknown_attempt(customer, stripe_card, bill, settings)
    payload = _event(
        "evt_pi_2",
        "payment_intent.payment_failed",
        {
            "id": "pi_failed",
            "metadata": {"idempotency_key": attempt.idempotency_key},
            "last_payment_error": {
                "code": "card_declined",
                "decline_code": "stolen_card",
                "message": "Your card was declined.",
            },
        },
    )

    assert _deliver(payload).json()["status"] == "processed"

    attempt.refresh_from_db()
    assert (attempt.status, attempt.decline_code, attempt.decline_kind) == (
        "declined",
        "stolen_card",
        "hard",
    )
    assert not Payment.objects.exists()


def test_an_event_contradicting_a_settled_attempt_fails_and_changes_nothing(
    stripe_payment: Payment,
) -> None:
    attempt = PaymentAttempt.objects.get()
    payload = _event(
        "evt_pi_3",
        "payment_intent.payment_failed",
        {"id": attempt.gateway_reference, "metadata": {"idempotency_key": attempt.idempotency_key}},
    )

    body = _deliver(payload).json()

    assert body["status"] == "failed"
    assert body["error"].startswith("attempt_outcome_mismatch: ")
    attempt.refresh_from_db()
    assert attempt.status == "succeeded"


# --- refunds made in Stripe's dashboard -----------------------------------------------------------


def test_a_refund_made_in_the_dashboard_is_recorded_and_booked_once(
    stripe_payment: Payment, balance: Balance
) -> None:
    charge = {
        "id": "ch_1",
        "object": "charge",
        "payment_intent": stripe_payment.gateway_reference,
        "amount": 3100,
        "amount_refunded": 1100,
        "currency": "usd",
    }
    refund = {
        "id": "re_dash",
        "object": "refund",
        "payment_intent": stripe_payment.gateway_reference,
        "amount": 1100,
        "currency": "usd",
        "status": "succeeded",
        "metadata": {},
    }

    assert _deliver(_event("evt_r1", "charge.refunded", charge)).json()["status"] == "processed"
    assert _deliver(_event("evt_r2", "refund.updated", refund)).json()["status"] == "processed"
    assert _deliver(_event("evt_r1", "charge.refunded", charge)).json()["status"] == "processed"

    recorded = Refund.objects.get()
    assert (recorded.origin, recorded.amount, recorded.status, recorded.gateway_reference) == (
        "gateway",
        D("11.00"),
        "succeeded",
        "re_dash",
    )
    stripe_payment.refresh_from_db()
    assert (stripe_payment.status, stripe_payment.amount_refunded) == (
        "partially_refunded",
        D("11.00"),
    )
    assert balance(A.CASH) == D("20.00")
    assert ledger_reconciliation().mismatches == []


def test_a_refund_we_made_is_not_recorded_twice_from_its_webhooks(
    stripe_payment: Payment,
) -> None:
    from billing.services import refund_create

    ours = refund_create(payment=stripe_payment, amount=D("5.00"), actor=STAFF)
    charge = {
        "id": "ch_1",
        "payment_intent": stripe_payment.gateway_reference,
        "amount_refunded": 500,
        "currency": "usd",
    }
    refund = {
        "id": ours.gateway_reference,
        "payment_intent": stripe_payment.gateway_reference,
        "amount": 500,
        "currency": "usd",
        "status": "succeeded",
        "metadata": {"idempotency_key": ours.idempotency_key},
    }

    _deliver(_event("evt_o1", "charge.refunded", charge))
    _deliver(_event("evt_o2", "refund.updated", refund))

    assert Refund.objects.get() == ours


# --- disputes -------------------------------------------------------------------------------------


def _dispute(stripe_payment: Payment, status: str) -> dict[str, Any]:
    return {
        "id": "dp_1",
        "object": "dispute",
        "amount": 3100,
        "currency": "usd",
        "payment_intent": stripe_payment.gateway_reference,
        "reason": "fraudulent",
        "status": status,
    }


def test_a_dispute_is_recorded_and_booked_then_lost(
    stripe_payment: Payment, balance: Balance
) -> None:
    opened = _deliver(
        _event("evt_d1", "charge.dispute.created", _dispute(stripe_payment, "needs_response"))
    )

    assert opened.json()["status"] == "processed"
    dispute = Dispute.objects.get()
    assert (dispute.amount, dispute.reason, dispute.status, dispute.payment) == (
        D("31.00"),
        "fraudulent",
        "open",
        stripe_payment,
    )
    stripe_payment.refresh_from_db()
    assert stripe_payment.status == "disputed"
    assert (balance(A.CASH), balance(A.DISPUTED_FUNDS)) == (D("0"), D("31.00"))
    assert ledger_reconciliation().mismatches == []

    _deliver(_event("evt_d2", "charge.dispute.closed", _dispute(stripe_payment, "lost")))
    _deliver(_event("evt_d2", "charge.dispute.closed", _dispute(stripe_payment, "lost")))

    dispute.refresh_from_db()
    assert dispute.status == "lost"
    assert (balance(A.DISPUTED_FUNDS), balance(A.CHARGEBACK_LOSSES)) == (D("0"), D("31.00"))
    assert ledger_reconciliation().mismatches == []


def test_a_won_dispute_gives_the_funds_back(stripe_payment: Payment, balance: Balance) -> None:
    _deliver(_event("evt_d1", "charge.dispute.created", _dispute(stripe_payment, "needs_response")))

    _deliver(_event("evt_d3", "charge.dispute.closed", _dispute(stripe_payment, "won")))

    stripe_payment.refresh_from_db()
    assert (stripe_payment.status, Dispute.objects.get().status) == ("succeeded", "won")
    assert (balance(A.CASH), balance(A.DISPUTED_FUNDS)) == (D("31.00"), D("0"))
    assert ledger_reconciliation().mismatches == []
