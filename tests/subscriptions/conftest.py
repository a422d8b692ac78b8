"""Fixtures of the lifecycle tests: a catalog, customers and a clock moved day by day.

Everything is made through the real services; `advance_to` runs the registered daily work
through the test clock exactly as `POST /api/v1/test_clock/advance` does.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import pytest

from billing.models import CustomerBalance, Invoice, InvoiceLine
from catalog import services as catalog
from catalog.models import Plan, PriceList, Product
from catalog.services import PhaseSpec, PriceSpec
from core.actors import Actor
from core.services import test_clock_advance, test_clock_set
from customers.models import Customer
from customers.services import customer_create

STAFF = Actor(type="user", id="7", label="alice")


@pytest.fixture
def default_list(clock: Any) -> PriceList:
    return catalog.price_list_create(
        code="default", name="Default", kind=PriceList.Kind.DEFAULT, actor=STAFF
    )


@pytest.fixture
def product(clock: Any) -> Product:
    return catalog.product_create(code="news", name="The Daily News", actor=STAFF)


@pytest.fixture
def addon_product(clock: Any) -> Product:
    return catalog.product_create(
        code="crosswords", name="Crosswords", kind=Product.Kind.ADDON, actor=STAFF
    )


def evergreen(amount: str, currency: str = "USD", setup_fee: str = "0") -> PhaseSpec:
    return PhaseSpec(
        kind="evergreen",
        prices=[PriceSpec(currency=currency, amount=Decimal(amount), setup_fee=Decimal(setup_fee))],
    )


def trial(days: int) -> PhaseSpec:
    return PhaseSpec(kind="trial", duration_unit="day", duration_count=days)


def intro(amount: str, months: int, currency: str = "USD") -> PhaseSpec:
    return PhaseSpec(
        kind="discount",
        duration_unit="month",
        duration_count=months,
        prices=[PriceSpec(currency=currency, amount=Decimal(amount))],
    )


def fixed_term(amount: str, months: int, *, renews: bool = False) -> PhaseSpec:
    return PhaseSpec(
        kind="fixed_term",
        duration_unit="month",
        duration_count=months,
        renews=renews,
        prices=[PriceSpec(currency="USD", amount=Decimal(amount))],
    )


@pytest.fixture
def make_plan(product: Product, default_list: PriceList) -> Callable[..., Plan]:
    """`make_plan("gold", "50.00")`: a monthly evergreen USD plan unless told otherwise."""

    def make(
        code: str,
        amount: str = "30.00",
        *,
        interval: str = "month",
        phases: list[PhaseSpec] | None = None,
        for_product: Product | None = None,
        **kwargs: Any,
    ) -> Plan:
        return catalog.plan_create(
            product=for_product or product,
            code=code,
            name=kwargs.pop("name", code.replace("-", " ").title()),
            billing_interval=interval,
            phases=phases or [evergreen(amount)],
            actor=STAFF,
            **kwargs,
        )

    return make


@pytest.fixture
def make_customer(clock: Any) -> Callable[..., Customer]:
    counter = iter(range(1, 100_000))

    def make(**fields: Any) -> Customer:
        number = next(counter)
        fields.setdefault("external_id", f"sub-{number}")
        fields.setdefault("email", f"subscriber{number}@example.com")
        fields.setdefault("name", f"Subscriber {number}")
        fields.setdefault("currency", "USD")
        return customer_create(actor=STAFF, **fields)

    return make


@pytest.fixture
def customer(make_customer: Callable[..., Customer]) -> Customer:
    return make_customer()


def midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


@pytest.fixture
def advance_to(clock: Any) -> Callable[[date], dict[str, Any]]:
    """Play the days up to `day` (its midnight) through the test clock and its daily work."""

    def advance(day: date) -> dict[str, Any]:
        return test_clock_advance(to=midnight(day), actor=STAFF)

    return advance


@pytest.fixture
def set_today(clock: Any) -> Callable[[date], None]:
    """Put the clock on `day` at noon without running any daily work (a quiet stretch)."""

    def move(day: date) -> None:
        test_clock_set(to=datetime.combine(day, time(12), tzinfo=UTC))

    return move


def invoices_of(customer: Customer) -> list[Invoice]:
    return list(Invoice.objects.filter(customer=customer).order_by("id"))


def lines_of(invoice: Invoice) -> list[tuple[str, date | None, date | None, Decimal]]:
    return [
        (line.kind, line.period_start, line.period_end, line.amount)
        for line in InvoiceLine.objects.filter(invoice=invoice).order_by("position", "id")
    ]


def balance_of(customer: Customer, currency: str = "USD") -> Decimal:
    row = CustomerBalance.objects.filter(customer=customer, currency=currency).first()
    return row.amount if row is not None else Decimal("0")
