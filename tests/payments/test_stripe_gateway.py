"""The Stripe gateway end to end: the real `stripe` client against localstripe.

Save a card (a pm_... id as Stripe.js makes it), autocharge at finalization, a decline, a
refund, and an unknown outcome settled without charging twice.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
import stripe

from billing.gateways.stripe_gateway import StripeGateway
from billing.models import GatewayCustomer, Invoice, Payment, PaymentAttempt, PaymentMethod, Refund
from billing.selectors import ledger_reconciliation
from billing.services import (
    invoice_pay_now,
    payment_attempt_reconcile,
    payment_method_attach,
    refund_create,
)
from core.errors import ValidationError
from customers.models import Customer

from .conftest import DECLINE_AT_CHARGE, GENERIC_DECLINE, STAFF, VISA, _free_port, line

pytestmark = pytest.mark.django_db

D = Decimal
Bill = Callable[..., Invoice]
Card = Callable[[str], str]


def _save(customer: Customer, stripe_card: Card, number: str = VISA) -> PaymentMethod:
    return payment_method_attach(
        customer=customer, payment_method_reference=stripe_card(number), actor=STAFF
    )


def _charges(client: stripe.StripeClient, customer: Customer) -> list[Any]:
    reference = GatewayCustomer.objects.get(customer=customer, gateway="stripe").reference
    return list(client.v1.charges.list(params={"customer": reference, "limit": 100}).data)


def test_a_card_is_saved_by_its_payment_method_id_and_attached_to_a_stripe_customer(
    customer: Customer, stripe_gateway: stripe.StripeClient, stripe_card: Card
) -> None:
    method = _save(customer, stripe_card)

    assert (method.gateway, method.brand, method.last4, method.exp_month, method.exp_year) == (
        "stripe",
        "visa",
        "4242",
        12,
        2030,
    )
    assert method.reference.startswith("pm_")
    stripe_customer = GatewayCustomer.objects.get(customer=customer).reference
    assert stripe_customer.startswith("cus_")
    at_stripe = stripe_gateway.v1.payment_methods.retrieve(method.reference)
    assert at_stripe.customer == stripe_customer


def test_a_card_declined_when_saved_is_refused(
    customer: Customer, stripe_gateway: stripe.StripeClient, stripe_card: Card
) -> None:
    with pytest.raises(ValidationError) as refused:
        _save(customer, stripe_card, GENERIC_DECLINE)

    assert (refused.value.code, refused.value.param) == ("card_declined", "payment_method")
    assert not PaymentMethod.objects.exists()


def test_a_card_number_is_refused_by_the_stripe_gateway(
    customer: Customer, stripe_gateway: stripe.StripeClient
) -> None:
    with pytest.raises(ValidationError) as refused:
        payment_method_attach(
            customer=customer, card_number=VISA, exp_month=12, exp_year=2030, actor=STAFF
        )

    assert refused.value.code == "payment_method_id_required"


def test_autocharge_at_finalization_pays_through_a_payment_intent(
    customer: Customer, stripe_gateway: stripe.StripeClient, stripe_card: Card, bill: Bill
) -> None:
    _save(customer, stripe_card)

    invoice = bill(customer, line("Digital monthly", "31.00"))

    assert invoice.status == "paid"
    attempt = PaymentAttempt.objects.get()
    payment = Payment.objects.get()
    assert attempt.gateway_reference == payment.gateway_reference
    intent = stripe_gateway.v1.payment_intents.retrieve(payment.gateway_reference)
    assert (intent.status, intent.amount, intent.currency, intent.metadata["idempotency_key"]) == (
        "succeeded",
        3100,
        "usd",
        f"invoice-{invoice.pk}-attempt-1",
    )
    assert ledger_reconciliation().mismatches == []


def test_a_decline_at_charge_is_recorded_soft_and_leaves_the_invoice_open(
    customer: Customer, stripe_gateway: stripe.StripeClient, stripe_card: Card, bill: Bill
) -> None:
    _save(customer, stripe_card, DECLINE_AT_CHARGE)

    invoice = bill(customer, line("Digital monthly", "31.00"))

    assert (invoice.status, invoice.amount_due) == ("open", D("31.00"))
    attempt = PaymentAttempt.objects.get()
    assert (attempt.status, attempt.decline_code, attempt.decline_kind) == (
        "declined",
        "card_declined",
        "soft",
    )
    assert not Payment.objects.exists()
    assert [charge.status for charge in _charges(stripe_gateway, customer)] == ["failed"]


def test_a_partial_then_full_refund_goes_back_through_stripe(
    customer: Customer, stripe_gateway: stripe.StripeClient, stripe_card: Card, bill: Bill
) -> None:
    _save(customer, stripe_card)
    bill(customer, line("Digital monthly", "31.00"))
    payment = Payment.objects.get()

    partial = refund_create(payment=payment, amount=D("10.00"), actor=STAFF)
    rest = refund_create(payment=payment, actor=STAFF)

    assert [(r.status, r.amount) for r in (partial, rest)] == [
        ("succeeded", D("10.00")),
        ("succeeded", D("21.00")),
    ]
    assert partial.gateway_reference.startswith("re_")
    at_stripe = stripe_gateway.v1.refunds.list(
        params={"payment_intent": payment.gateway_reference}
    ).data
    assert sorted(refund.amount for refund in at_stripe) == [1000, 2100]
    payment.refresh_from_db()
    assert payment.status == "refunded"
    assert Refund.objects.count() == 2
    assert ledger_reconciliation().mismatches == []


def test_an_unreachable_stripe_leaves_the_outcome_unknown_and_a_reconciliation_charges_once(
    customer: Customer,
    stripe_gateway: stripe.StripeClient,
    stripe_card: Card,
    bill: Bill,
    settings: Any,
    localstripe: str,
) -> None:
    customer.autocharge = False
    customer.save(update_fields=["autocharge"])
    _save(customer, stripe_card)
    invoice = bill(customer, line("Digital monthly", "31.00"))
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{_free_port()}"  # nobody listens there

    attempt = invoice_pay_now(invoice=invoice, actor=STAFF)

    assert attempt.status == "unknown"
    assert attempt.error_message.startswith("APIConnectionError")
    settings.STRIPE_API_BASE = localstripe

    settled = payment_attempt_reconcile(attempt=attempt, actor=STAFF)

    assert (settled.pk, settled.status) == (attempt.pk, "succeeded")
    charges = _charges(stripe_gateway, customer)
    assert [(charge.status, charge.amount) for charge in charges] == [("succeeded", 3100)]
    invoice.refresh_from_db()
    assert invoice.status == "paid"


def test_a_charge_whose_answer_was_lost_is_found_by_its_key_and_not_made_again(
    customer: Customer,
    stripe_gateway: stripe.StripeClient,
    stripe_card: Card,
    bill: Bill,
    settings: Any,
    localstripe: str,
) -> None:
    customer.autocharge = False
    customer.save(update_fields=["autocharge"])
    method = _save(customer, stripe_card)
    invoice = bill(customer, line("Digital monthly", "31.00"))
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{_free_port()}"
    attempt = invoice_pay_now(invoice=invoice, actor=STAFF)
    settings.STRIPE_API_BASE = localstripe
    # The request did reach Stripe after all (only its answer was lost).
    reached = StripeGateway().charge(
        amount=D("31.00"),
        currency="USD",
        customer_reference=GatewayCustomer.objects.get(customer=customer).reference,
        payment_method_reference=method.reference,
        idempotency_key=attempt.idempotency_key,
        description="lost answer",
    )
    assert reached.status == "succeeded"

    settled = payment_attempt_reconcile(attempt=attempt, actor=STAFF)

    assert (settled.status, settled.gateway_reference) == ("succeeded", reached.reference)
    assert len(_charges(stripe_gateway, customer)) == 1
    assert Payment.objects.get().gateway_reference == reached.reference
