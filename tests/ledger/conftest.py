"""Ledger fixtures: the platform clock fixed, and short helpers to read balances and lines."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from billing.ledger.models import JournalEntry
from billing.ledger.selectors import account_balance


@pytest.fixture(autouse=True)
def _fixed_clock(clock: Any) -> None:
    """Every ledger test runs with the platform clock fixed (created_at comes from it)."""


@pytest.fixture
def balance() -> Callable[..., Decimal]:
    """`balance("cash")`: an account's balance on its normal side (USD, main sub-ledger)."""

    def read(code: str, currency: str = "USD", party: str = "") -> Decimal:
        return account_balance(code=code, currency=currency, party=party).balance

    return read


def lines_of(entry: JournalEntry) -> list[tuple[str, str, Decimal]]:
    """(side, account code, amount) of an entry's lines, in posting order."""
    return [
        (line.side, line.account.code, line.amount)
        for line in entry.lines.select_related("account").order_by("id")
    ]


def days(start: date, end: date) -> list[date]:
    """Every day from start to end, both included."""
    return [date.fromordinal(n) for n in range(start.toordinal(), end.toordinal() + 1)]
