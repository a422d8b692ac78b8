"""The posting services billing will call, the reports and the ledger self-check."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal

import pytest
from django.db import connection

from billing.ledger import postings
from billing.ledger.models import AccountCode as A
from billing.ledger.reports import (
    deferred_revenue_waterfall,
    ledger_check,
    revenue_by_month,
    trial_balance,
)
from billing.ledger.selectors import party_balances
from billing.ledger.services import Posting, ledger_post
from core.errors import ValidationError

from .conftest import lines_of

pytestmark = pytest.mark.django_db

D = Decimal
DAY = date(2026, 1, 15)
CUSTOMER = "customer:1"


def test_invoice_finalized_separates_tax_and_immediate_revenue() -> None:
    entry = postings.post_invoice_finalized(
        key="invoice:1",
        currency="USD",
        effective_date=DAY,
        receivable=D("133.00"),
        deferred=D("100.00"),
        revenue=D("20.00"),
        tax=D("13.00"),
        source_id=1,
        party=CUSTOMER,
    )
    assert lines_of(entry) == [
        ("debit", A.ACCOUNTS_RECEIVABLE, D("133.0000")),
        ("credit", A.DEFERRED_REVENUE, D("100.0000")),
        ("credit", A.SUBSCRIPTION_REVENUE, D("20.0000")),
        ("credit", A.TAX_PAYABLE, D("13.0000")),
    ]
    assert (entry.source_type, entry.source_id) == ("invoice", "1")
    assert party_balances(code=A.ACCOUNTS_RECEIVABLE, currency="USD") == {CUSTOMER: D("133.00")}


def test_invoice_finalized_refuses_parts_that_do_not_add_up() -> None:
    with pytest.raises(ValidationError) as refused:
        postings.post_invoice_finalized(
            key="invoice:1",
            currency="USD",
            effective_date=DAY,
            receivable=D("100.00"),
            deferred=D("90.00"),
            tax=D("9.00"),
            source_id=1,
        )
    assert refused.value.code == "ledger_unbalanced"


@pytest.mark.parametrize(
    ("post", "expected"),
    [
        (
            lambda: postings.post_payment(
                key="k",
                currency="USD",
                effective_date=DAY,
                amount=D("50.00"),
                unapplied=D("5.00"),
                source_id=1,
                party=CUSTOMER,
            ),
            [
                ("debit", A.CASH, D("50.0000")),
                ("credit", A.ACCOUNTS_RECEIVABLE, D("45.0000")),
                ("credit", A.CUSTOMER_CREDIT, D("5.0000")),
            ],
        ),
        (
            lambda: postings.post_credit_applied(
                key="k", currency="USD", effective_date=DAY, amount=D("7"), source_id=1
            ),
            [
                ("debit", A.CUSTOMER_CREDIT, D("7.0000")),
                ("credit", A.ACCOUNTS_RECEIVABLE, D("7.0000")),
            ],
        ),
        (
            lambda: postings.post_credit_granted(
                key="k", currency="USD", effective_date=DAY, amount=D("7"), source_id=1
            ),
            [
                ("debit", A.REFUNDS_AND_CREDITS, D("7.0000")),
                ("credit", A.CUSTOMER_CREDIT, D("7.0000")),
            ],
        ),
        (
            lambda: postings.post_refund(
                key="k", currency="USD", effective_date=DAY, amount=D("7"), source_id=1
            ),
            [("debit", A.CUSTOMER_CREDIT, D("7.0000")), ("credit", A.CASH, D("7.0000"))],
        ),
        (
            lambda: postings.post_credit_note(
                key="k",
                currency="USD",
                effective_date=DAY,
                counterparty=A.CASH,
                contra_revenue=D("10.00"),
                tax=D("1.00"),
                source_id=1,
                party=CUSTOMER,
            ),
            [
                ("debit", A.REFUNDS_AND_CREDITS, D("10.0000")),
                ("debit", A.TAX_PAYABLE, D("1.0000")),
                ("credit", A.CASH, D("11.0000")),
            ],
        ),
        (
            lambda: postings.post_write_off(
                key="k", currency="USD", effective_date=DAY, amount=D("9"), source_id=1
            ),
            [("debit", A.BAD_DEBT, D("9.0000")), ("credit", A.ACCOUNTS_RECEIVABLE, D("9.0000"))],
        ),
        (
            lambda: postings.post_dispute(
                key="k",
                currency="USD",
                effective_date=DAY,
                amount=D("20"),
                fee=D("15"),
                stage="opened",
                source_id=1,
            ),
            [
                ("debit", A.DISPUTED_FUNDS, D("20.0000")),
                ("debit", A.CHARGEBACK_LOSSES, D("15.0000")),
                ("credit", A.CASH, D("35.0000")),
            ],
        ),
        (
            lambda: postings.post_dispute(
                key="k",
                currency="USD",
                effective_date=DAY,
                amount=D("20"),
                stage="won",
                source_id=1,
            ),
            [("debit", A.CASH, D("20.0000")), ("credit", A.DISPUTED_FUNDS, D("20.0000"))],
        ),
        (
            lambda: postings.post_dispute(
                key="k",
                currency="USD",
                effective_date=DAY,
                amount=D("20"),
                stage="lost",
                source_id=1,
            ),
            [
                ("debit", A.CHARGEBACK_LOSSES, D("20.0000")),
                ("credit", A.DISPUTED_FUNDS, D("20.0000")),
            ],
        ),
    ],
)
def test_each_posting_books_its_accounts(
    post: Callable[[], object], expected: list[tuple[str, str, Decimal]]
) -> None:
    entry = post()
    assert lines_of(entry) == expected  # type: ignore[arg-type]
    assert ledger_check().ok


def _year_of_activity() -> None:
    postings.post_invoice_finalized(
        key="inv:1",
        currency="USD",
        effective_date=date(2026, 1, 1),
        receivable=D("110.00"),
        deferred=D("100.00"),
        tax=D("10.00"),
        source_id=1,
    )
    postings.post_payment(
        key="pay:1",
        currency="USD",
        effective_date=date(2026, 1, 5),
        amount=D("110.00"),
        source_id=1,
    )
    for month, day in ((1, 31), (2, 28)):
        ledger_post(
            idempotency_key=f"rec:{month}",
            effective_date=date(2026, month, day),
            source_type="recognition",
            source_id=str(month),
            description="",
            lines=[
                Posting.debit(A.DEFERRED_REVENUE, "USD", D("30.00")),
                Posting.credit(A.SUBSCRIPTION_REVENUE, "USD", D("30.00")),
            ],
        )
    postings.post_credit_note(
        key="cn:1",
        currency="USD",
        effective_date=date(2026, 2, 10),
        counterparty=A.CUSTOMER_CREDIT,
        contra_revenue=D("5.00"),
        source_id=1,
    )
    postings.post_invoice_finalized(
        key="inv:jpy",
        currency="JPY",
        effective_date=date(2026, 2, 1),
        receivable=D("1000"),
        deferred=D("1000"),
        source_id=2,
    )


def test_the_trial_balance_at_a_date_and_now() -> None:
    _year_of_activity()

    at_january = trial_balance(as_of=date(2026, 1, 31), currency="USD")
    assert [(r.code, r.debit, r.credit) for r in at_january.rows] == [
        (A.CASH, D("110.00"), D("0")),
        (A.ACCOUNTS_RECEIVABLE, D("0"), D("0")),
        (A.DEFERRED_REVENUE, D("0"), D("70.00")),
        (A.TAX_PAYABLE, D("0"), D("10.00")),
        (A.SUBSCRIPTION_REVENUE, D("0"), D("30.00")),
    ]
    assert at_january.totals() == {"USD": (D("110.00"), D("110.00"))}

    now = trial_balance()
    assert now.balanced
    assert now.totals() == {"JPY": (D("1000"), D("1000")), "USD": (D("115.00"), D("115.00"))}
    revenue = now.row(A.SUBSCRIPTION_REVENUE, "USD")
    assert revenue is not None
    assert revenue.balance == D("60.00")
    # the trial balance from every line agrees with the cached balances
    assert trial_balance(as_of=date(2099, 1, 1)).rows == now.rows


def test_revenue_per_month_and_the_deferred_waterfall() -> None:
    _year_of_activity()

    assert [
        (r.month, r.currency, r.recognized, r.refunds_and_credits, r.net)
        for r in revenue_by_month()
    ] == [
        (date(2026, 1, 1), "USD", D("30.00"), D("0"), D("30.00")),
        (date(2026, 2, 1), "USD", D("30.00"), D("5.00"), D("25.00")),
    ]
    waterfall = deferred_revenue_waterfall(
        currency="USD", start=date(2026, 1, 1), end=date(2026, 3, 31)
    )
    assert [
        (m.month.month, m.opening, m.billed, m.recognized, m.reversed, m.closing) for m in waterfall
    ] == [
        (1, D("0"), D("100.00"), D("30.00"), D("0"), D("70.00")),
        (2, D("70.00"), D("0"), D("30.00"), D("0"), D("40.00")),
        (3, D("40.00"), D("0"), D("0"), D("0"), D("40.00")),
    ]
    # a waterfall starting later opens with the balance carried forward
    (march,) = deferred_revenue_waterfall(
        currency="USD", start=date(2026, 3, 1), end=date(2026, 3, 1)
    )
    assert (march.opening, march.closing) == (D("40.00"), D("40.00"))


def test_the_self_check_finds_a_cached_balance_that_drifted_from_its_lines() -> None:
    _year_of_activity()
    assert ledger_check().ok

    # when someone edits a cached total by hand
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE ledger_account SET debit_total = debit_total + 1 "
            "WHERE code = 'cash' AND currency = 'USD'"
        )

    # then the check names it, and the currency no longer balances
    check = ledger_check()
    assert not check.ok
    assert check.problems[0] == "USD: account debits 286.0000 != credits 285.0000"
    assert check.problems[1].endswith("(cash USD ): cached 111.0000/0.0000, lines 110.0000/0")
    assert len(check.problems) == 2
