"""Billing fixtures: customers, tax rates and coupons made through the real services."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from billing.models import Invoice
from billing.services import LineSpec, invoice_create
from catalog.models import Coupon, TaxRate
from catalog.services import CouponAmountSpec, coupon_create, tax_rate_create
from core.actors import Actor
from customers.models import Customer
from customers.services import customer_create

STAFF = Actor(type="user", id="7", label="alice")


@pytest.fixture
def make_customer(clock: Any) -> Callable[..., Customer]:
    counter = iter(range(1, 10_000))

    def make(**fields: Any) -> Customer:
        number = next(counter)
        fields.setdefault("external_id", f"ext-{number}")
        fields.setdefault("email", f"customer{number}@example.com")
        fields.setdefault("name", f"Customer {number}")
        return customer_create(actor=STAFF, **fields)

    return make


@pytest.fixture
def customer(make_customer: Callable[..., Customer]) -> Customer:
    """A USD customer with no tax rate for their place."""
    return make_customer(currency="USD")


@pytest.fixture
def california_tax(clock: Any) -> TaxRate:
    return tax_rate_create(
        name="California sales tax", country="US", region="CA", percentage="7.25", actor=STAFF
    )


@pytest.fixture
def uk_vat(clock: Any) -> TaxRate:
    return tax_rate_create(
        name="UK VAT", country="GB", percentage="20", inclusive=True, actor=STAFF
    )


@pytest.fixture
def californian(make_customer: Callable[..., Customer], california_tax: TaxRate) -> Customer:
    return make_customer(currency="USD", country="US", region="CA", postal_code="94103")


@pytest.fixture
def briton(make_customer: Callable[..., Customer], uk_vat: TaxRate) -> Customer:
    return make_customer(currency="GBP", country="GB")


@pytest.fixture
def percent_coupon(clock: Any) -> Coupon:
    return coupon_create(
        code="quarter-off",
        name="25% off",
        discount_type=Coupon.DiscountType.PERCENT,
        percent_off=Decimal("25"),
        duration=Coupon.Duration.FOREVER,
        actor=STAFF,
    )


@pytest.fixture
def fixed_coupon(clock: Any) -> Coupon:
    return coupon_create(
        code="five-off",
        name="5 off",
        discount_type=Coupon.DiscountType.FIXED,
        amounts=[
            CouponAmountSpec(currency="USD", amount_off=Decimal("5.00")),
            CouponAmountSpec(currency="JPY", amount_off=Decimal("500")),
        ],
        duration=Coupon.Duration.ONCE,
        actor=STAFF,
    )


def line(
    description: str = "Digital monthly", unit_amount: str = "10.00", **fields: Any
) -> LineSpec:
    """A recurring line spec: `line(unit_amount="9.99", proration=(17, 31))`."""
    fields.setdefault("kind", "recurring")
    return LineSpec(description=description, unit_amount=Decimal(unit_amount), **fields)


@pytest.fixture
def make_invoice(clock: Any) -> Callable[..., Invoice]:
    """An invoice through `invoice_create` (finalized unless `finalize=False`)."""

    def make(customer: Customer, *lines: LineSpec, **kwargs: Any) -> Invoice:
        kwargs.setdefault("currency", customer.currency or "USD")
        kwargs.setdefault("billing_reason", Invoice.BillingReason.SUBSCRIPTION_CYCLE)
        return invoice_create(
            customer=customer, lines=list(lines or [line()]), actor=STAFF, **kwargs
        )

    return make
