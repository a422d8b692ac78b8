"""Concurrent writers on real PostgreSQL: numbers stay gapless and unique, balances never go
below zero, an invoice is never credited twice over. Real threads, real transactions."""

from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar

import pytest
from django.db import close_old_connections, connection

from billing.models import CreditNote, CustomerBalance, Invoice
from billing.selectors import customer_balance
from billing.services import credit_note_create, customer_balance_adjust, invoice_finalize
from core.errors import ApplicationError
from customers.models import Customer
from tests.billing.conftest import STAFF, line

pytestmark = pytest.mark.django_db(transaction=True)

T = TypeVar("T")


def _run_at_once(calls: list[Callable[[], T]]) -> list[T | ApplicationError]:
    """Run each call in its own thread (and database connection), all released together."""
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


def test_simultaneous_finalizations_get_consecutive_numbers(
    customer: Customer, make_invoice: Callable[..., Invoice]
) -> None:
    drafts = [make_invoice(customer, line(f"Item {i}"), finalize=False) for i in range(8)]

    finalized = _run_at_once(
        [partial(invoice_finalize, invoice=draft, actor=STAFF) for draft in drafts]
    )

    numbers = sorted(str(invoice.number) for invoice in finalized if isinstance(invoice, Invoice))
    assert numbers == [f"INV-2026-{n:06d}" for n in range(1, 9)]
    sequence_numbers = Invoice.objects.order_by("sequence_number").values_list(
        "sequence_number", flat=True
    )
    assert list(sequence_numbers) == list(range(1, 9))


def test_simultaneous_invoices_never_use_more_credit_than_the_balance(
    customer: Customer, make_invoice: Callable[..., Invoice]
) -> None:
    customer_balance_adjust(
        customer=customer, currency="USD", amount=Decimal("10.00"), kind="adjustment", actor=STAFF
    )
    drafts = [make_invoice(customer, line(unit_amount="8.00"), finalize=False) for _ in range(3)]

    _run_at_once([partial(invoice_finalize, invoice=draft, actor=STAFF) for draft in drafts])

    applied = sorted(invoice.credit_applied for invoice in Invoice.objects.all())
    assert applied == [0, Decimal("2.00"), Decimal("8.00")]
    assert sum(invoice.amount_due for invoice in Invoice.objects.all()) == Decimal("14.00")
    assert customer_balance(customer=customer, currency="USD") == 0


def test_simultaneous_withdrawals_cannot_overdraw_the_balance(customer: Customer) -> None:
    customer_balance_adjust(
        customer=customer, currency="USD", amount=Decimal("10.00"), kind="adjustment", actor=STAFF
    )

    def withdraw() -> Any:
        return customer_balance_adjust(
            customer=customer,
            currency="USD",
            amount=Decimal("-6.00"),
            kind="adjustment",
            actor=STAFF,
        )

    results = _run_at_once([withdraw, withdraw, withdraw])

    refusals = [r.code for r in results if isinstance(r, ApplicationError)]
    assert refusals == ["insufficient_balance", "insufficient_balance"]
    assert customer_balance(customer=customer, currency="USD") == Decimal("4.00")


def test_simultaneous_first_credits_create_one_balance(customer: Customer) -> None:
    def credit() -> Any:
        return customer_balance_adjust(
            customer=customer,
            currency="USD",
            amount=Decimal("1.00"),
            kind="adjustment",
            actor=STAFF,
        )

    _run_at_once([credit] * 5)

    assert CustomerBalance.objects.filter(customer=customer).count() == 1
    assert customer_balance(customer=customer, currency="USD") == Decimal("5.00")


def test_an_invoice_credited_twice_at_once_is_credited_once(
    customer: Customer, make_invoice: Callable[..., Invoice]
) -> None:
    invoice = make_invoice(customer, line(unit_amount="30.00"))

    results = _run_at_once(
        [lambda: credit_note_create(invoice=invoice, actor=STAFF, outcome="credit_balance")] * 3
    )

    assert sorted(r.code for r in results if isinstance(r, ApplicationError)) == [
        "nothing_to_credit",
        "nothing_to_credit",
    ]
    assert [note.number for note in CreditNote.objects.all()] == ["CN-2026-000001"]
    assert customer_balance(customer=customer, currency="USD") == Decimal("30.00")
