"""Reads of the ledger for billing, the doors and reports. A balance is one row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.db import connection
from django.db.models import Prefetch, QuerySet

from billing.ledger.models import (
    Account,
    JournalEntry,
    JournalLine,
    RecognitionReduction,
    RecognitionSchedule,
)
from core.errors import NotFoundError
from core.money import normalize_currency

ZERO = Decimal("0")
_BALANCE_SQL = (
    "SELECT debit_total, credit_total, balance FROM "  # noqa: S608 - the model's table
    f"{Account._meta.db_table} WHERE code = %s AND currency = %s AND party = %s"
)


@dataclass(frozen=True, slots=True)
class Balance:
    code: str
    currency: str
    party: str
    debit_total: Decimal
    credit_total: Decimal
    balance: Decimal  # on the account's normal side: positive is the usual direction


def account_balance(*, code: str, currency: str, party: str = "") -> Balance:
    """The current balance of one account: one indexed row, whatever its history.

    An account that was never posted to has a zero balance.
    """
    currency = normalize_currency(currency)
    # The hottest read of the ledger: one unique-index lookup, without building a queryset.
    with connection.cursor() as cursor:
        cursor.execute(_BALANCE_SQL, [code, currency, party])
        row = cursor.fetchone()
    debit, credit, balance = row if row is not None else (ZERO, ZERO, ZERO)
    return Balance(code, currency, party, debit, credit, balance)


def account_list(
    *, currency: str | None = None, code: str | None = None, party: str | None = None
) -> QuerySet[Account]:
    accounts = Account.objects.all()
    if currency is not None:
        accounts = accounts.filter(currency=normalize_currency(currency))
    if code is not None:
        accounts = accounts.filter(code=code)
    if party is not None:
        accounts = accounts.filter(party=party)
    return accounts.order_by("currency", "code", "party")


def party_balances(*, code: str, currency: str) -> dict[str, Decimal]:
    """{party: balance} of one account's sub-ledgers (receivables per customer, for example).

    This is the ledger side of billing's reconciliation (ledger receivable per customer against
    the customer's open amounts due).
    """
    rows = Account.objects.filter(code=code, currency=normalize_currency(currency)).values_list(
        "party", "balance"
    )
    return dict(rows)


def journal_entry_get(*, entry_id: int) -> JournalEntry:
    entry = journal_entry_list().filter(pk=entry_id).first()
    if entry is None:
        raise NotFoundError(f"No journal entry {entry_id}.", param="entry_id")
    return entry


def journal_entry_list(
    *,
    source_type: str | None = None,
    source_id: str | int | None = None,
    effective_from: date | None = None,
    effective_to: date | None = None,
    account: Account | None = None,
) -> QuerySet[JournalEntry]:
    """Entries, newest first, with their lines (and the lines' accounts) prefetched."""
    entries = JournalEntry.objects.all()
    if source_type is not None:
        entries = entries.filter(source_type=source_type)
    if source_id is not None:
        entries = entries.filter(source_id=str(source_id))
    if effective_from is not None:
        entries = entries.filter(effective_date__gte=effective_from)
    if effective_to is not None:
        entries = entries.filter(effective_date__lte=effective_to)
    if account is not None:
        entries = entries.filter(lines__account=account).distinct()
    lines = JournalLine.objects.select_related("account").order_by("id")
    return entries.prefetch_related(Prefetch("lines", queryset=lines)).order_by("-id")


def recognition_schedule_for_source(
    *, source_id: str | int, source_type: str = "invoice_line"
) -> RecognitionSchedule | None:
    return RecognitionSchedule.objects.filter(
        source_type=source_type, source_id=str(source_id)
    ).first()


def recognition_reduction_list(*, schedule: RecognitionSchedule) -> list[RecognitionReduction]:
    return list(schedule.reductions.order_by("id"))
