"""Payments fixtures: customers with saved test cards, invoices, and ledger balances."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import stripe

from billing.ledger.selectors import account_balance
from billing.listeners import register_payment_listener, unregister_payment_listener
from billing.models import Invoice, PaymentMethod
from billing.selectors import party
from billing.services import invoice_create, payment_method_attach
from billing.services.invoices import LineSpec
from customers.models import Customer
from customers.services import customer_create
from tests.billing.conftest import STAFF, line

__all__ = ["STAFF", "line"]

VISA = "4242424242424242"
GENERIC_DECLINE = "4000000000000002"
INSUFFICIENT_FUNDS = "4000000000009995"
STOLEN = "4000000000009979"
DECLINE_AT_CHARGE = "4000000000000341"
PROCESSING_ERROR = "4000000000000119"
TIMEOUT = "4000000000006975"

Capture = Callable[..., AbstractContextManager[list[Callable[[], Any]]]]


@pytest.fixture(autouse=True)
def _simulated_gateway(settings: Any) -> None:
    settings.PAYMENT_GATEWAY = "simulated"


@pytest.fixture
def make_customer(clock: Any) -> Callable[..., Customer]:
    counter = iter(range(1, 10_000))

    def make(**fields: Any) -> Customer:
        number = next(counter)
        fields.setdefault("external_id", f"pay-{number}")
        fields.setdefault("email", f"payer{number}@example.com")
        fields.setdefault("name", f"Payer {number}")
        fields.setdefault("currency", "USD")
        return customer_create(actor=STAFF, **fields)

    return make


@pytest.fixture
def customer(make_customer: Callable[..., Customer]) -> Customer:
    """A USD autocharge customer without a payment method yet."""
    return make_customer()


@pytest.fixture
def save_card(clock: Any) -> Callable[..., PaymentMethod]:
    """`save_card(customer, number)`: a card saved through the simulated gateway."""

    def save(customer: Customer, number: str = VISA, **kwargs: Any) -> PaymentMethod:
        kwargs.setdefault("exp_month", 12)
        kwargs.setdefault("exp_year", 2030)
        return payment_method_attach(customer=customer, card_number=number, actor=STAFF, **kwargs)

    return save


@pytest.fixture
def bill(clock: Any, django_capture_on_commit_callbacks: Capture) -> Callable[..., Invoice]:
    """`bill(customer, line(...), ...)`: an invoice finalized through `invoice_create`, with the
    callbacks run after its commit (the autocharge) executed, as in production."""

    def make(customer: Customer, *lines: LineSpec, **kwargs: Any) -> Invoice:
        kwargs.setdefault("currency", customer.currency or "USD")
        kwargs.setdefault("billing_reason", Invoice.BillingReason.SUBSCRIPTION_CYCLE)
        with django_capture_on_commit_callbacks(execute=True):
            invoice = invoice_create(
                customer=customer, lines=list(lines or [line()]), actor=STAFF, **kwargs
            )
        invoice.refresh_from_db()
        return invoice

    return make


@pytest.fixture
def balance() -> Callable[..., Decimal]:
    """`balance("cash")` or `balance("accounts_receivable", customer)`: a ledger balance."""

    def read(code: str, customer: Customer | None = None, currency: str = "USD") -> Decimal:
        who = party(customer.pk) if customer is not None else ""
        return account_balance(code=code, currency=currency, party=who).balance

    return read


# --- Stripe, against a local Stripe-compatible server ---------------------------------------------

STRIPE_SECRET_KEY = "sk_test_platform"
STRIPE_WEBHOOK_SECRET = "whsec_platform_test"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def localstripe() -> Iterator[str]:
    """A localstripe server (PyPI `localstripe`, a dev dependency) on a free local port, for
    the whole session; yields its API base. Its state starts empty (`--from-scratch`)."""
    executable = Path(sys.executable).with_name("localstripe")
    port = _free_port()
    process = subprocess.Popen(  # noqa: S603 - our own venv's executable, fixed arguments
        [str(executable), "--port", str(port), "--from-scratch"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"localstripe did not start on port {port}") from None
            time.sleep(0.1)
    try:
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def stripe_gateway(settings: Any, localstripe: str) -> stripe.StripeClient:
    """The platform set up for Stripe against localstripe; returns a client for the test's own
    calls (creating payment methods as Stripe.js would, reading what Stripe holds)."""
    settings.PAYMENT_GATEWAY = "stripe"
    settings.STRIPE_SECRET_KEY = STRIPE_SECRET_KEY
    settings.STRIPE_API_BASE = localstripe
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    settings.STRIPE_WEBHOOK_SECRET = STRIPE_WEBHOOK_SECRET
    return stripe.StripeClient(STRIPE_SECRET_KEY, base_addresses={"api": localstripe})


@pytest.fixture
def stripe_card(stripe_gateway: stripe.StripeClient) -> Callable[[str], str]:
    """`stripe_card("4242424242424242")`: a pm_... id, as Stripe.js creates it in the browser."""

    def create(number: str) -> str:
        method = stripe_gateway.v1.payment_methods.create(
            params={
                "type": "card",
                "card": {"number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"},
            }
        )
        return str(method.id)

    return create


@pytest.fixture
def heard() -> Iterator[list[int]]:
    """The invoice ids billing's payment listeners are called with, in calls' order."""
    calls: list[int] = []
    register_payment_listener("test", calls.extend)
    yield calls
    unregister_payment_listener("test")
