"""PostgreSQL itself enforces the ledger's rules, even against raw SQL.

The balance check is a deferred constraint trigger: it fires at COMMIT, so these tests commit
for real (transaction=True) and expect the error from the commit itself, or force the check
early with SET CONSTRAINTS ALL IMMEDIATE. The checks of a line's entry and account run at the
end of each INSERT statement.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction

from billing.ledger.models import Account, JournalEntry, JournalLine, RecognitionSchedule
from billing.ledger.services import Posting, ledger_post

D = Decimal
NOW = datetime(2026, 1, 15, 12, tzinfo=UTC)


def _post_sale(key: str = "sale:1") -> JournalEntry:
    return ledger_post(
        idempotency_key=key,
        effective_date=date(2026, 1, 15),
        source_type="test",
        source_id="1",
        description="a sale",
        lines=[
            Posting.debit("accounts_receivable", "USD", D("12.00")),
            Posting.credit("deferred_revenue", "USD", D("10.00")),
            Posting.credit("tax_payable", "USD", D("2.00")),
        ],
    )


def _raw_entry(cursor: object, key: str) -> int:
    cursor.execute(  # type: ignore[attr-defined]
        "INSERT INTO ledger_journalentry (idempotency_key, input_hash, effective_date, "
        "source_type, source_id, description, created_at) "
        "VALUES (%s, '', '2026-01-15', 'raw', '', '', %s) RETURNING id",
        [key, NOW],
    )
    return cursor.fetchone()[0]  # type: ignore[attr-defined]


def _raw_line(cursor: object, entry_id: int, account_id: int, side: str, amount: str) -> None:
    cursor.execute(  # type: ignore[attr-defined]
        "INSERT INTO ledger_journalline (entry_id, account_id, side, amount, currency) "
        "VALUES (%s, %s, %s, %s, 'USD')",
        [entry_id, account_id, side, amount],
    )


@pytest.mark.django_db(transaction=True)
def test_an_unbalanced_entry_from_raw_sql_is_refused_at_commit() -> None:
    # given accounts that exist
    _post_sale()
    receivable = Account.objects.get(code="accounts_receivable", currency="USD")
    deferred = Account.objects.get(code="deferred_revenue", currency="USD")

    # when raw SQL writes an entry whose debits exceed its credits, then the commit fails
    with (  # noqa: PT012 - the error comes from the commit at the end of the block
        pytest.raises(IntegrityError, match="does not balance in USD"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        entry_id = _raw_entry(cursor, "raw:unbalanced")
        _raw_line(cursor, entry_id, receivable.pk, "debit", "10.00")
        _raw_line(cursor, entry_id, deferred.pk, "credit", "9.99")

    # and nothing of it was kept
    assert not JournalEntry.objects.filter(idempotency_key="raw:unbalanced").exists()
    assert JournalLine.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_a_balanced_entry_from_raw_sql_commits_line_by_line() -> None:
    # given accounts that exist
    _post_sale()
    receivable = Account.objects.get(code="accounts_receivable", currency="USD")
    deferred = Account.objects.get(code="deferred_revenue", currency="USD")

    # when raw SQL writes a balanced entry one line per statement (unbalanced in between)
    with transaction.atomic(), connection.cursor() as cursor:
        entry_id = _raw_entry(cursor, "raw:balanced")
        _raw_line(cursor, entry_id, receivable.pk, "debit", "10.00")
        _raw_line(cursor, entry_id, deferred.pk, "credit", "4.00")
        _raw_line(cursor, entry_id, deferred.pk, "credit", "6.00")

    # then the check at commit lets it through
    assert JournalLine.objects.filter(entry_id=entry_id).count() == 3


@pytest.mark.django_db(transaction=True)
def test_an_entry_without_lines_is_refused_at_commit() -> None:
    with (
        pytest.raises(IntegrityError, match="has no lines"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        _raw_entry(cursor, "raw:empty")
    assert not JournalEntry.objects.exists()


@pytest.mark.django_db
def test_the_balance_check_fires_when_constraints_are_made_immediate() -> None:
    # given a posted entry and an unbalanced raw line added to it inside this transaction
    entry = _post_sale()
    cash = Account.objects.create(code="cash", currency="USD", type="asset", created_at=NOW)
    with connection.cursor() as cursor:
        _raw_line(cursor, entry.pk, cash.pk, "debit", "1.00")

        # when the deferred checks run now, then the unbalanced entry is refused
        with pytest.raises(IntegrityError, match=f"ledger entry {entry.pk} does not balance"):
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


@pytest.mark.django_db(transaction=True)
def test_an_entry_balanced_by_one_statement_and_unbalanced_by_the_next_is_refused_at_commit() -> (
    None
):
    # given accounts that exist
    _post_sale()
    receivable = Account.objects.get(code="accounts_receivable", currency="USD")
    deferred = Account.objects.get(code="deferred_revenue", currency="USD")

    # when raw SQL writes a balanced pair of lines, then one more debit in another statement
    with (  # noqa: PT012 - the error comes from the commit at the end of the block
        pytest.raises(IntegrityError, match=r"does not balance in USD: debits 11\.0000"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        entry_id = _raw_entry(cursor, "raw:split")
        cursor.execute(
            "INSERT INTO ledger_journalline (entry_id, account_id, side, amount, currency) "
            "VALUES (%s, %s, 'debit', 10, 'USD'), (%s, %s, 'credit', 10, 'USD')",
            [entry_id, receivable.pk, entry_id, deferred.pk],
        )
        _raw_line(cursor, entry_id, receivable.pk, "debit", "1.00")

    # then the commit refuses it
    assert not JournalEntry.objects.filter(idempotency_key="raw:split").exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("deferred_again", [True, False])
def test_a_line_added_after_its_entry_was_checked_early_is_checked_again(
    deferred_again: bool,
) -> None:
    # given a balanced raw entry whose check has already run (and passed) in its transaction
    _post_sale()
    receivable = Account.objects.get(code="accounts_receivable", currency="USD")
    deferred = Account.objects.get(code="deferred_revenue", currency="USD")
    with (  # noqa: PT012 - the error comes from the last line or from the commit
        pytest.raises(IntegrityError, match="does not balance in USD"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        entry_id = _raw_entry(cursor, "raw:early")
        _raw_line(cursor, entry_id, receivable.pk, "debit", "10.00")
        _raw_line(cursor, entry_id, deferred.pk, "credit", "10.00")
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        if deferred_again:
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")

        # when one more line unbalances it, then it is refused (at once, or at commit)
        _raw_line(cursor, entry_id, receivable.pk, "debit", "1.00")

    assert not JournalEntry.objects.filter(idempotency_key="raw:early").exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("via", ["insert", "copy"])
def test_no_line_is_ever_added_to_an_entry_committed_earlier(via: str) -> None:
    # given a committed entry
    entry = _post_sale()
    cash = Account.objects.create(code="cash", currency="USD", type="asset", created_at=NOW)
    tax = Account.objects.get(code="tax_payable", currency="USD")

    # when a later transaction adds lines to it, even a balanced pair, then they are refused
    with (  # noqa: PT012 - one statement, refused as it ends
        pytest.raises(IntegrityError, match=f"entry {entry.pk}, which another transaction posted"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        rows = [
            (entry.pk, cash.pk, "debit", "1.00", "USD"),
            (entry.pk, tax.pk, "credit", "1.00", "USD"),
        ]
        if via == "insert":
            cursor.execute(
                "INSERT INTO ledger_journalline (entry_id, account_id, side, amount, currency) "
                "VALUES (%s, %s, %s, %s, %s), (%s, %s, %s, %s, %s)",
                [value for row in rows for value in row],
            )
        else:
            # psycopg's COPY, with Django's error classes as its execute() has them
            with (
                connection.wrap_database_errors,
                cursor.copy(
                    "COPY ledger_journalline (entry_id, account_id, side, amount, currency) "
                    "FROM STDIN"
                ) as copy,
            ):
                for row in rows:
                    copy.write_row(row)

    # and the entry is as it was posted
    assert JournalLine.objects.filter(entry=entry).count() == 3


@pytest.mark.django_db(transaction=True)
def test_lines_added_in_a_savepoint_belong_to_the_entry_of_the_enclosing_transaction() -> None:
    # given accounts that exist
    _post_sale()
    receivable = Account.objects.get(code="accounts_receivable", currency="USD")
    deferred = Account.objects.get(code="deferred_revenue", currency="USD")

    # when an entry gets its first line, and its second one inside a savepoint
    with transaction.atomic(), connection.cursor() as cursor:
        entry_id = _raw_entry(cursor, "raw:savepoint")
        _raw_line(cursor, entry_id, receivable.pk, "debit", "10.00")
        with transaction.atomic():
            _raw_line(cursor, entry_id, deferred.pk, "credit", "10.00")

    # then both are its lines
    assert JournalLine.objects.filter(entry_id=entry_id).count() == 2


@pytest.mark.django_db(transaction=True)
def test_an_entry_cannot_claim_another_transaction_to_receive_lines_later() -> None:
    # when raw SQL names a future transaction as the entry's creator, then the commit refuses it
    with (
        pytest.raises(IntegrityError, match="created_txid is set by PostgreSQL"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "INSERT INTO ledger_journalentry (idempotency_key, input_hash, effective_date, "
            "source_type, source_id, description, created_at, created_txid) "
            "VALUES ('raw:claim', '', '2026-01-15', 'raw', '', '', %s, txid_current() + 10)",
            [NOW],
        )
    assert not JournalEntry.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_journalline SET amount = amount + 1",
        "UPDATE ledger_journalline SET side = 'credit' WHERE side = 'debit'",
        "DELETE FROM ledger_journalline",
        "UPDATE ledger_journalentry SET description = 'edited'",
        "UPDATE ledger_journalentry SET effective_date = '2020-01-01'",
        "DELETE FROM ledger_journalentry",
    ],
)
def test_posted_entries_and_lines_can_never_be_updated_or_deleted(statement: str) -> None:
    # given a committed entry
    entry = _post_sale()

    # when raw SQL tries to rewrite or erase it, then PostgreSQL refuses
    with pytest.raises(IntegrityError, match="append-only"), connection.cursor() as cursor:
        cursor.execute(statement)

    # and it is intact
    assert JournalEntry.objects.get(pk=entry.pk).description == "a sale"
    assert sorted(JournalLine.objects.values_list("side", "amount")) == [
        ("credit", D("2.0000")),
        ("credit", D("10.0000")),
        ("debit", D("12.0000")),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("amount", ["0", "-5.00"])
def test_line_amounts_are_positive(amount: str) -> None:
    entry = _post_sale()
    account = Account.objects.get(code="tax_payable", currency="USD")
    with pytest.raises(IntegrityError, match="ledger_line_amount_positive"):
        JournalLine.objects.create(
            entry=entry, account=account, side="debit", amount=D(amount), currency="USD"
        )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("account", "currency", "entry", "message"),
    [
        ("tax_payable", "EUR", None, "refers to no EUR account"),
        (None, "USD", None, "refers to no USD account 999999"),
        ("tax_payable", "USD", 999_999, "refers to no entry 999999"),
    ],
)
def test_a_line_refers_to_an_entry_and_an_account_in_its_currency(
    account: str | None, currency: str, entry: int | None, message: str
) -> None:
    # given a posted entry, and a line for raw SQL with a wrong account, currency or entry
    posted = _post_sale()
    account_id = (
        Account.objects.get(code=account, currency="USD").pk if account is not None else 999_999
    )
    # when the line goes in, then its statement is refused at once (not at commit)
    with connection.cursor() as cursor, pytest.raises(IntegrityError, match=message):
        cursor.execute(
            "INSERT INTO ledger_journalline (entry_id, account_id, side, amount, currency) "
            "VALUES (%s, %s, 'debit', 1, %s)",
            [entry or posted.pk, account_id, currency],
        )


@pytest.mark.django_db
def test_an_account_never_changes_its_identity_or_disappears() -> None:
    _post_sale()
    account = Account.objects.get(code="tax_payable", currency="USD")
    with pytest.raises(IntegrityError, match="never changes"), transaction.atomic():
        Account.objects.filter(pk=account.pk).update(currency="EUR")
    with (
        pytest.raises(IntegrityError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM ledger_account WHERE id = %s", [account.pk])
    assert Account.objects.get(pk=account.pk).currency == "USD"


@pytest.mark.django_db
def test_an_account_must_belong_to_the_chart_with_its_type() -> None:
    with pytest.raises(IntegrityError, match="ledger_account_in_chart"):
        Account.objects.create(code="cash", currency="USD", type="liability", created_at=NOW)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("amount", "reduced", "recognized", "constraint"),
    [
        ("0", "0", "0", "ledger_schedule_not_zero"),
        ("-10", "1", "0", "ledger_schedule_reduction_within_amount"),
        ("-10", "0", "1", "ledger_schedule_recognized_within_amount"),
        ("-10", "-4", "-7", "ledger_schedule_recognized_within_amount"),
        ("10", "-1", "0", "ledger_schedule_reduction_within_amount"),
    ],
)
def test_every_amount_of_a_schedule_has_its_sign(
    amount: str, reduced: str, recognized: str, constraint: str
) -> None:
    with pytest.raises(IntegrityError, match=constraint), transaction.atomic():
        RecognitionSchedule.objects.create(
            source_id="1",
            currency="USD",
            amount=D(amount),
            reduced_amount=D(reduced),
            recognized_amount=D(recognized),
            service_start=date(2026, 1, 1),
            service_end=date(2026, 2, 1),
            recognized_through=date(2025, 12, 31),
            created_at=NOW,
            updated_at=NOW,
        )


@pytest.mark.django_db
def test_a_schedule_never_changes_its_terms() -> None:
    schedule = RecognitionSchedule.objects.create(
        source_id="1",
        currency="USD",
        amount=D("10"),
        service_start=date(2026, 1, 1),
        service_end=date(2026, 2, 1),
        recognized_through=date(2025, 12, 31),
        created_at=NOW,
        updated_at=NOW,
    )
    with pytest.raises(IntegrityError, match="never changes its terms"), transaction.atomic():
        RecognitionSchedule.objects.filter(pk=schedule.pk).update(amount=D("20"))
    # its progress does change
    RecognitionSchedule.objects.filter(pk=schedule.pk).update(recognized_amount=D("1"))
    assert RecognitionSchedule.objects.get(pk=schedule.pk).recognized_amount == D("1")
