"""Concurrent postings on the same accounts: exact balances, no deadlock, no double booking.

Each thread has its own database connection and commits for real (transaction=True).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date
from decimal import Decimal

import pytest
from django.db import connection

from billing.ledger.models import Account, JournalEntry, JournalLine
from billing.ledger.reports import ledger_check
from billing.ledger.selectors import account_balance
from billing.ledger.services import Posting, ledger_post
from core.errors import ConflictError

pytestmark = pytest.mark.django_db(transaction=True)

D = Decimal
DAY = date(2026, 1, 15)
THREADS = 4


def _in_threads(work: Callable[[int], None], count: int = THREADS) -> list[BaseException]:
    """Run work(n) in `count` threads started together; returns what they raised."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            barrier.wait()
            work(n)
        except BaseException as error:  # noqa: BLE001 - handed back to the test, which fails on it
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a posting thread hung"
    return errors


def test_threads_posting_to_the_same_accounts_in_opposite_orders_keep_exact_balances() -> None:
    # given four accounts that every posting touches, listed in a different order per thread
    codes = ["accounts_receivable", "cash", "deferred_revenue", "tax_payable"]
    per_thread = 25

    def post(n: int) -> None:
        for i in range(per_thread):
            lines = [
                Posting.debit("accounts_receivable", "USD", D("3.00")),
                Posting.debit("cash", "USD", D("1.00")),
                Posting.credit("deferred_revenue", "USD", D("2.50")),
                Posting.credit("tax_payable", "USD", D("1.50")),
            ]
            if n % 2:
                lines.reverse()
            ledger_post(
                idempotency_key=f"t{n}:{i}",
                effective_date=DAY,
                source_type="test",
                source_id=f"{n}:{i}",
                description="",
                lines=lines,
            )

    # when they all post at once (the accounts are created by the first of them)
    errors = _in_threads(post)

    # then every posting went through and every balance is exact
    assert errors == []
    total = THREADS * per_thread
    assert JournalEntry.objects.count() == total
    assert JournalLine.objects.count() == 4 * total
    expected = {
        "accounts_receivable": D("3.00") * total,
        "cash": D("1.00") * total,
        "deferred_revenue": D("2.50") * total,
        "tax_payable": D("1.50") * total,
    }
    assert {c: account_balance(code=c, currency="USD").balance for c in codes} == expected
    assert Account.objects.count() == 4
    assert ledger_check().ok


def test_the_same_key_posted_by_many_threads_at_once_books_once() -> None:
    def post(n: int) -> None:
        ledger_post(
            idempotency_key="payment:1",
            effective_date=DAY,
            source_type="payment",
            source_id="1",
            description="",
            lines=[
                Posting.debit("cash", "EUR", D("10.00")),
                Posting.credit("accounts_receivable", "EUR", D("10.00")),
            ],
        )

    errors = _in_threads(post)

    assert errors == []
    assert JournalEntry.objects.count() == 1
    assert account_balance(code="cash", currency="EUR").balance == D("10.00")


def test_a_key_reused_with_other_amounts_by_concurrent_threads_books_one_of_them() -> None:
    def post(n: int) -> None:
        ledger_post(
            idempotency_key="payment:1",
            effective_date=DAY,
            source_type="payment",
            source_id="1",
            description="",
            lines=[
                Posting.debit("cash", "EUR", D(n + 1)),
                Posting.credit("accounts_receivable", "EUR", D(n + 1)),
            ],
        )

    errors = _in_threads(post)

    assert len(errors) == THREADS - 1
    assert all(isinstance(e, ConflictError) and e.code == "ledger_key_reused" for e in errors)
    (entry,) = JournalEntry.objects.all()
    booked = entry.lines.get(side="debit").amount
    assert account_balance(code="cash", currency="EUR").balance == booked
    assert ledger_check().ok
