"""ledger_post / ledger_post_batch / ledger_reverse: validation, balances, idempotency."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.ledger.models import Account, AccountCode, JournalEntry, JournalLine
from billing.ledger.selectors import account_balance, journal_entry_list
from billing.ledger.services import (
    EntrySpec,
    Posting,
    ledger_post,
    ledger_post_batch,
    ledger_reverse,
)
from core.actors import Actor
from core.errors import ConflictError, ValidationError
from core.models import AuditLog

from .conftest import lines_of

pytestmark = pytest.mark.django_db

D = Decimal
DAY = date(2026, 1, 15)


def _sale(key: str = "sale:1", **overrides: Any) -> JournalEntry:
    kwargs: dict[str, Any] = {
        "idempotency_key": key,
        "effective_date": DAY,
        "source_type": "invoice",
        "source_id": "42",
        "description": "Invoice finalized",
        "lines": [
            Posting.debit("accounts_receivable", "USD", D("12.00")),
            Posting.credit("deferred_revenue", "USD", D("10.00")),
            Posting.credit("tax_payable", "USD", D("2.00")),
        ],
    }
    kwargs.update(overrides)
    return ledger_post(**kwargs)


def test_a_posting_writes_its_lines_and_keeps_balances_current(
    balance: Callable[..., Decimal],
) -> None:
    # when
    entry = _sale()

    # then
    stored = JournalEntry.objects.get(pk=entry.pk)
    assert (stored.idempotency_key, stored.effective_date, stored.source_type) == (
        "sale:1",
        DAY,
        "invoice",
    )
    assert (stored.source_id, stored.description) == ("42", "Invoice finalized")
    assert lines_of(stored) == [
        ("debit", "accounts_receivable", D("12.0000")),
        ("credit", "deferred_revenue", D("10.0000")),
        ("credit", "tax_payable", D("2.0000")),
    ]
    assert balance("accounts_receivable") == D("12.00")
    assert balance("deferred_revenue") == D("10.00")
    assert balance("tax_payable") == D("2.00")
    receivable = account_balance(code="accounts_receivable", currency="USD")
    assert (receivable.debit_total, receivable.credit_total) == (D("12.00"), D("0"))


def test_accounts_are_created_on_first_use_per_currency_with_their_type() -> None:
    # when
    _sale()
    _sale(
        "sale:eur",
        lines=[
            Posting.debit("cash", "eur", D("5")),
            Posting.credit("customer_credit", "EUR", D("5"), party="customer:7"),
        ],
    )

    # then
    assert sorted(Account.objects.values_list("code", "currency", "party", "type")) == [
        ("accounts_receivable", "USD", "", "asset"),
        ("cash", "EUR", "", "asset"),
        ("customer_credit", "EUR", "customer:7", "liability"),
        ("deferred_revenue", "USD", "", "liability"),
        ("tax_payable", "USD", "", "liability"),
    ]


def test_a_balance_read_is_one_query_whatever_the_history() -> None:
    for n in range(30):
        _sale(f"sale:{n}")
    with CaptureQueriesContext(connection) as queries:
        read = account_balance(code="accounts_receivable", currency="USD")
    assert read.balance == D("360.00")
    assert len(queries) == 1


def test_an_account_never_posted_to_has_a_zero_balance() -> None:
    assert account_balance(code="cash", currency="JPY").balance == D("0")


def test_posting_costs_the_same_queries_for_three_lines_or_thirty() -> None:
    # given the accounts exist
    _sale("warm-up")
    with CaptureQueriesContext(connection) as three:
        _sale("three")
    many = [Posting.debit("accounts_receivable", "USD", D("1.00")) for _ in range(29)]
    many.append(Posting.credit("deferred_revenue", "USD", D("29.00")))
    with CaptureQueriesContext(connection) as thirty:
        _sale("thirty", lines=many)
    # savepoint, the test clock, the posting statement, release
    assert len(three) == len(thirty) == 4


def test_a_batch_costs_the_same_queries_as_one_entry() -> None:
    _sale("warm-up")
    specs = [
        EntrySpec(
            idempotency_key=f"batch:{n}",
            effective_date=DAY,
            source_type="invoice",
            source_id=str(n),
            description="",
            lines=[
                Posting.debit("accounts_receivable", "USD", D("1.00")),
                Posting.credit("deferred_revenue", "USD", D("1.00")),
            ],
        )
        for n in range(100)
    ]
    with CaptureQueriesContext(connection) as queries:
        entries = ledger_post_batch(entries=specs)
    assert [e.idempotency_key for e in entries] == [f"batch:{n}" for n in range(100)]
    assert len(queries) == 4
    assert JournalLine.objects.count() == 3 + 200
    assert account_balance(code="deferred_revenue", currency="USD").balance == D("110.00")


def test_entries_in_several_currencies_balance_per_currency() -> None:
    # given an entry balanced in USD and in EUR
    entry = _sale(
        "fx",
        lines=[
            Posting.debit("cash", "USD", D("10.00")),
            Posting.credit("customer_credit", "USD", D("10.00")),
            Posting.debit("cash", "EUR", D("9.00")),
            Posting.credit("customer_credit", "EUR", D("9.00")),
        ],
    )
    assert len(lines_of(entry)) == 4

    # when debits and credits match in total but not per currency, then it is refused
    with pytest.raises(ValidationError) as refused:
        _sale(
            "fx-bad",
            lines=[
                Posting.debit("cash", "USD", D("10.00")),
                Posting.credit("customer_credit", "EUR", D("10.00")),
            ],
        )
    assert refused.value.code == "ledger_unbalanced"


@pytest.mark.parametrize(
    ("lines", "code", "param"),
    [
        ([Posting.debit("cash", "USD", D("1"))], "ledger_too_few_lines", "lines"),
        (
            [Posting.debit("cash", "USD", D("1.00")), Posting.credit("tax_payable", "USD", D("2"))],
            "ledger_unbalanced",
            "lines",
        ),
        (
            [Posting.debit("cash", "USD", D("0")), Posting.credit("tax_payable", "USD", D("0"))],
            "ledger_amount_not_positive",
            "lines[0].amount",
        ),
        (
            [Posting.debit("cash", "USD", D("-1")), Posting.credit("tax_payable", "USD", D("-1"))],
            "ledger_amount_not_positive",
            "lines[0].amount",
        ),
        (
            [
                Posting.debit("cash", "USD", D("1.001")),
                Posting.credit("tax_payable", "USD", D("1.001")),
            ],
            "invalid_amount",
            "lines[0].amount",
        ),
        (
            [
                Posting.debit("cash", "JPY", D("1.5")),
                Posting.credit("tax_payable", "JPY", D("1.5")),
            ],
            "invalid_amount",
            "lines[0].amount",
        ),
        (
            [Posting.debit("cash", "USD", 1.5), Posting.credit("tax_payable", "USD", 1.5)],  # type: ignore[arg-type]
            "invalid_amount",
            "lines[0].amount",
        ),
        (
            [Posting.debit("petty_cash", "USD", D("1")), Posting.credit("cash", "USD", D("1"))],
            "ledger_unknown_account",
            "lines[0].account_code",
        ),
        (
            [Posting.debit("cash", "XYZ", D("1")), Posting.credit("tax_payable", "XYZ", D("1"))],
            "invalid_currency",
            "lines[0].currency",
        ),
        (
            [Posting("cash", "USD", "both", D("1")), Posting.credit("tax_payable", "USD", D("1"))],
            "invalid",
            "lines[0].side",
        ),
    ],
)
def test_invalid_postings_are_refused_before_the_database_sees_them(
    lines: list[Posting], code: str, param: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        _sale("bad", lines=lines)
    assert (refused.value.code, refused.value.param) == (code, param)
    assert not JournalEntry.objects.exists()
    assert not Account.objects.exists()


def test_amounts_are_stored_in_the_currencys_minor_units() -> None:
    entry = _sale(
        "kwd",
        lines=[
            Posting.debit("cash", "KWD", D("1.5")),
            Posting.credit("customer_credit", "KWD", D("1.500")),
        ],
    )
    assert [amount for _, _, amount in lines_of(entry)] == [D("1.5000"), D("1.5000")]
    assert account_balance(code="cash", currency="KWD").balance == D("1.500")


def test_the_same_key_and_input_replays_the_first_entry_and_writes_nothing(
    balance: Callable[..., Decimal],
) -> None:
    # given
    first = _sale()

    # when the same posting is retried, even with its lines in another order and "10" for
    # "10.00"
    again = _sale(
        lines=[
            Posting.credit("tax_payable", "USD", D("2")),
            Posting.debit("accounts_receivable", "USD", D("12.00")),
            Posting.credit("deferred_revenue", "USD", D("10")),
        ]
    )

    # then
    assert again.pk == first.pk
    assert again.created_at == first.created_at
    assert JournalEntry.objects.count() == 1
    assert JournalLine.objects.count() == 3
    assert balance("accounts_receivable") == D("12.00")


@pytest.mark.parametrize(
    "overrides",
    [
        {"effective_date": date(2026, 1, 16)},
        {"source_id": "43"},
        {"description": "another"},
        {
            "lines": [
                Posting.debit("accounts_receivable", "USD", D("13.00")),
                Posting.credit("deferred_revenue", "USD", D("11.00")),
                Posting.credit("tax_payable", "USD", D("2.00")),
            ]
        },
    ],
)
def test_the_same_key_with_another_input_is_a_conflict(
    overrides: dict[str, Any], balance: Callable[..., Decimal]
) -> None:
    first = _sale()
    with pytest.raises(ConflictError) as refused:
        _sale(**overrides)
    assert refused.value.code == "ledger_key_reused"
    assert list(JournalEntry.objects.values_list("pk", flat=True)) == [first.pk]
    assert balance("accounts_receivable") == D("12.00")


def test_a_batch_is_all_or_nothing() -> None:
    # given one entry already posted
    _sale("sale:1")
    good = EntrySpec(
        idempotency_key="sale:2",
        effective_date=DAY,
        source_type="invoice",
        source_id="2",
        description="",
        lines=[Posting.debit("cash", "USD", D("1")), Posting.credit("tax_payable", "USD", D("1"))],
    )
    reused = EntrySpec(
        idempotency_key="sale:1",
        effective_date=DAY,
        source_type="invoice",
        source_id="other",
        description="",
        lines=[Posting.debit("cash", "USD", D("1")), Posting.credit("tax_payable", "USD", D("1"))],
    )

    # when a batch holds a new entry and one that reuses a key
    with pytest.raises(ConflictError):
        ledger_post_batch(entries=[good, reused])

    # then neither is written
    assert list(JournalEntry.objects.values_list("idempotency_key", flat=True)) == ["sale:1"]
    assert account_balance(code="cash", currency="USD").balance == D("0")

    # and a batch cannot use one key twice
    with pytest.raises(ValidationError) as refused:
        ledger_post_batch(entries=[good, good])
    assert refused.value.code == "ledger_duplicate_key"


def test_a_batch_returns_replayed_and_new_entries_in_order() -> None:
    first = _sale("sale:1")
    replay = EntrySpec(
        idempotency_key="sale:1",
        effective_date=DAY,
        source_type="invoice",
        source_id="42",
        description="Invoice finalized",
        lines=[
            Posting.debit("accounts_receivable", "USD", D("12.00")),
            Posting.credit("deferred_revenue", "USD", D("10.00")),
            Posting.credit("tax_payable", "USD", D("2.00")),
        ],
    )
    new = EntrySpec(
        idempotency_key="sale:2",
        effective_date=DAY,
        source_type="invoice",
        source_id="2",
        description="",
        lines=[Posting.debit("cash", "USD", D("1")), Posting.credit("tax_payable", "USD", D("1"))],
    )
    entries = ledger_post_batch(entries=[new, replay])
    assert [e.idempotency_key for e in entries] == ["sale:2", "sale:1"]
    assert entries[1].pk == first.pk
    assert account_balance(code="tax_payable", currency="USD").balance == D("3.00")


def test_a_reversal_mirrors_the_entry_and_restores_the_balances(
    balance: Callable[..., Decimal],
) -> None:
    # given
    entry = _sale()
    staff = Actor(type="user", id="7", label="finance@example.com")

    # when
    reversal = ledger_reverse(
        entry=entry,
        idempotency_key="sale:1:reversal",
        effective_date=date(2026, 1, 20),
        reason="booked twice",
        actor=staff,
    )

    # then
    assert lines_of(reversal) == [
        ("credit", "accounts_receivable", D("12.0000")),
        ("debit", "deferred_revenue", D("10.0000")),
        ("debit", "tax_payable", D("2.0000")),
    ]
    assert reversal.reverses_id == entry.pk
    assert (reversal.source_type, reversal.source_id) == ("invoice", "42")
    assert reversal.description == f"Reversal of #{entry.pk}: booked twice"
    assert balance("accounts_receivable") == balance("deferred_revenue") == D("0")
    assert balance("tax_payable") == D("0")
    audit = AuditLog.objects.get(action="journal_entry.reverse")
    assert (audit.actor_label, audit.object_id) == ("finance@example.com", str(reversal.pk))

    # and asking again with the same key returns it; with another key is a conflict
    again = ledger_reverse(
        entry=entry,
        idempotency_key="sale:1:reversal",
        effective_date=date(2026, 1, 20),
        reason="booked twice",
    )
    assert again.pk == reversal.pk
    with pytest.raises(ConflictError) as refused:
        ledger_reverse(
            entry=entry, idempotency_key="other", effective_date=date(2026, 1, 20), reason="x"
        )
    assert refused.value.code == "ledger_already_reversed"
    assert JournalEntry.objects.count() == 2
    assert AuditLog.objects.filter(action="journal_entry.reverse").count() == 1


def test_a_reversal_needs_a_reason() -> None:
    entry = _sale()
    with pytest.raises(ValidationError):
        ledger_reverse(entry=entry, idempotency_key="r", effective_date=DAY, reason=" ")
    assert JournalEntry.objects.count() == 1


def test_entries_are_listed_by_source_with_their_lines() -> None:
    _sale("sale:1")
    _sale(
        "pay:1",
        source_type="payment",
        lines=[
            Posting.debit(AccountCode.CASH, "USD", D("12.00")),
            Posting.credit(AccountCode.ACCOUNTS_RECEIVABLE, "USD", D("12.00")),
        ],
    )
    entries = list(journal_entry_list(source_type="invoice", source_id=42))
    assert [e.idempotency_key for e in entries] == ["sale:1"]
    with CaptureQueriesContext(connection) as queries:
        codes = [line.account.code for line in entries[0].lines.all()]
    assert codes == ["accounts_receivable", "deferred_revenue", "tax_payable"]
    assert len(queries) == 0
