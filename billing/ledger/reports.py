"""Ledger reports: trial balance, revenue per month, the deferred-revenue waterfall, and the
ledger's self-check.

All figures are per currency (the ledger never converts). Party sub-ledgers are summed into
their account of the chart. Dates are effective dates.

Receivables aging and the reconciliation with invoices and payments need invoices, so they
belong to billing (which calls `selectors.party_balances` for the ledger side); they are not
here by design.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Sum

from billing.ledger.models import (
    CHART,
    DEBIT_NORMAL_TYPES,
    Account,
    AccountCode,
    AccountType,
    JournalEntry,
    JournalLine,
    RecognitionSchedule,
)
from billing.ledger.recognition import RECOGNITION_SOURCE
from core.money import normalize_currency
from core.periods import add_months

ZERO = Decimal("0")
_LINE = JournalLine._meta.db_table
_ENTRY = JournalEntry._meta.db_table
_ACCOUNT = Account._meta.db_table


# --- trial balance ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrialBalanceRow:
    code: str
    type: str
    currency: str
    debit_total: Decimal
    credit_total: Decimal

    @property
    def balance(self) -> Decimal:
        """On the account's normal side (an asset's debit balance is positive)."""
        net = self.debit_total - self.credit_total
        return net if self.type in DEBIT_NORMAL_TYPES else -net

    @property
    def debit(self) -> Decimal:
        """The trial balance's debit column: the net balance when it is a debit."""
        return max(self.debit_total - self.credit_total, ZERO)

    @property
    def credit(self) -> Decimal:
        return max(self.credit_total - self.debit_total, ZERO)


@dataclass(frozen=True, slots=True)
class TrialBalance:
    as_of: date | None  # None: the current cached balances
    rows: list[TrialBalanceRow]

    def totals(self) -> dict[str, tuple[Decimal, Decimal]]:
        """{currency: (debit column, credit column)}; the two are equal in a sound ledger."""
        totals: dict[str, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
        for row in self.rows:
            totals[row.currency][0] += row.debit
            totals[row.currency][1] += row.credit
        return {currency: (d, c) for currency, (d, c) in sorted(totals.items())}

    @property
    def balanced(self) -> bool:
        return all(debit == credit for debit, credit in self.totals().values())

    def row(self, code: str, currency: str) -> TrialBalanceRow | None:
        return next((r for r in self.rows if r.code == code and r.currency == currency), None)


def trial_balance(*, as_of: date | None = None, currency: str | None = None) -> TrialBalance:
    """Every account's totals: from the lines up to `as_of` (inclusive), or, without a date,
    from the cached balances (one row per account, no history read)."""
    if as_of is None:
        accounts = Account.objects.all()
        if currency is not None:
            accounts = accounts.filter(currency=normalize_currency(currency))
        grouped = accounts.values("code", "currency").annotate(
            debit=Sum("debit_total"), credit=Sum("credit_total")
        )
        raw = [(g["code"], g["currency"], g["debit"], g["credit"]) for g in grouped]
    else:
        lines = JournalLine.objects.filter(entry__effective_date__lte=as_of)
        if currency is not None:
            lines = lines.filter(currency=normalize_currency(currency))
        totals: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
        for code, cur, side, amount in (
            lines.values("account__code", "currency", "side")
            .annotate(total=Sum("amount"))
            .values_list("account__code", "currency", "side", "total")
        ):
            totals[(code, cur)][0 if side == "debit" else 1] += amount
        raw = [(code, cur, d, c) for (code, cur), (d, c) in totals.items()]
    rows = [
        TrialBalanceRow(code=code, type=CHART[code], currency=cur, debit_total=d, credit_total=c)
        for code, cur, d, c in raw
    ]
    rows.sort(key=lambda r: (r.currency, list(CHART).index(r.code)))
    return TrialBalance(as_of=as_of, rows=rows)


# --- revenue per month ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RevenueMonth:
    month: date  # the first day of the month
    currency: str
    recognized: Decimal  # net credits to revenue accounts
    refunds_and_credits: Decimal  # net debits to contra-revenue

    @property
    def net(self) -> Decimal:
        return self.recognized - self.refunds_and_credits


def revenue_by_month(
    *, currency: str | None = None, start: date | None = None, end: date | None = None
) -> list[RevenueMonth]:
    """Revenue recognized per month and currency, with the contra-revenue of the month.

    `start` and `end` (inclusive) bound the effective dates; months without any revenue line
    are left out.
    """
    revenue_types = [AccountType.REVENUE, AccountType.CONTRA_REVENUE]
    conditions = ["a.type = ANY(%s)"]
    params: list[Any] = [revenue_types]
    if currency is not None:
        conditions.append("l.currency = %s")
        params.append(normalize_currency(currency))
    if start is not None:
        conditions.append("e.effective_date >= %s")
        params.append(start)
    if end is not None:
        conditions.append("e.effective_date <= %s")
        params.append(end)
    sql = (
        "SELECT date_trunc('month', e.effective_date)::date AS month, l.currency, a.type, "  # noqa: S608
        "SUM(CASE WHEN l.side = 'credit' THEN l.amount ELSE -l.amount END) "
        f"FROM {_LINE} l JOIN {_ENTRY} e ON e.id = l.entry_id "
        f"JOIN {_ACCOUNT} a ON a.id = l.account_id WHERE {' AND '.join(conditions)} "
        "GROUP BY 1, 2, 3"
    )
    months: dict[tuple[date, str], list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for month, cur, kind, net_credit in cursor.fetchall():
            if kind == AccountType.REVENUE:
                months[(month, cur)][0] += net_credit
            else:
                months[(month, cur)][1] -= net_credit
    return [
        RevenueMonth(month=month, currency=cur, recognized=rec, refunds_and_credits=contra)
        for (month, cur), (rec, contra) in sorted(months.items())
    ]


# --- deferred revenue waterfall ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeferredMonth:
    month: date
    currency: str
    opening: Decimal
    billed: Decimal  # credits: invoiced for future service
    recognized: Decimal  # by recognition runs, net of what credit lines gave back
    reversed: Decimal  # other debits: credit lines, credits and refunds of unearned service
    closing: Decimal  # the balance at the month's end


def deferred_revenue_waterfall(*, currency: str, start: date, end: date) -> list[DeferredMonth]:
    """The deferred-revenue balance at each month end from `start`'s month to `end`'s, with
    what moved it during the month."""
    currency = normalize_currency(currency)
    first, last = start.replace(day=1), end.replace(day=1)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT date_trunc('month', e.effective_date)::date, "  # noqa: S608
            "SUM(l.amount) FILTER (WHERE l.side = 'credit' AND e.source_type <> %s), "
            "SUM(CASE WHEN l.side = 'debit' THEN l.amount ELSE -l.amount END) "
            "FILTER (WHERE e.source_type = %s), "
            "SUM(l.amount) FILTER (WHERE l.side = 'debit' AND e.source_type <> %s), "
            f"e.effective_date < %s FROM {_LINE} l JOIN {_ENTRY} e ON e.id = l.entry_id "
            f"JOIN {_ACCOUNT} a ON a.id = l.account_id "
            "WHERE a.code = %s AND l.currency = %s AND e.effective_date < %s "
            "GROUP BY 1, 5",
            [
                RECOGNITION_SOURCE,
                RECOGNITION_SOURCE,
                RECOGNITION_SOURCE,
                first,
                AccountCode.DEFERRED_REVENUE,
                currency,
                add_months(last, 1),
            ],
        )
        opening = ZERO
        moves: dict[date, tuple[Decimal, Decimal, Decimal]] = {}
        for month, credit, recognized, other, before in cursor.fetchall():
            credit, recognized, other = credit or ZERO, recognized or ZERO, other or ZERO
            if before:
                opening += credit - recognized - other
            else:
                moves[month] = (credit, recognized, other)
    result = []
    month = first
    while month <= last:
        billed, recognized, reversed_ = moves.get(month, (ZERO, ZERO, ZERO))
        closing = opening + billed - recognized - reversed_
        result.append(
            DeferredMonth(month, currency, opening, billed, recognized, reversed_, closing)
        )
        opening, month = closing, add_months(month, 1)
    return result


# --- self-checks ------------------------------------------------------------------------------


@dataclass(slots=True)
class LedgerCheck:
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def ledger_check() -> LedgerCheck:
    """Check the ledger against itself; every problem found is described.

    - per currency, the cached debit totals of all accounts equal the credit totals;
    - every account's cached totals equal the sums of its lines;
    - every entry balances per currency and has lines (the database refuses otherwise; this
      catches a trigger dropped by hand).
    """
    check = LedgerCheck()
    for cur, debit, credit in (
        Account.objects.values("currency")
        .annotate(debit=Sum("debit_total"), credit=Sum("credit_total"))
        .values_list("currency", "debit", "credit")
        .order_by("currency")
    ):
        if debit != credit:
            check.problems.append(f"{cur}: account debits {debit} != credits {credit}")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.id, a.code, a.currency, a.party, a.debit_total, a.credit_total, "  # noqa: S608
            "COALESCE(s.debit, 0), COALESCE(s.credit, 0) "
            f"FROM {_ACCOUNT} a LEFT JOIN (SELECT account_id, "
            "SUM(amount) FILTER (WHERE side = 'debit') AS debit, "
            "SUM(amount) FILTER (WHERE side = 'credit') AS credit "
            f"FROM {_LINE} GROUP BY account_id) s ON s.account_id = a.id "
            "WHERE a.debit_total <> COALESCE(s.debit, 0) "
            "OR a.credit_total <> COALESCE(s.credit, 0) "
            "ORDER BY a.id"
        )
        for pk, code, cur, party, debit, credit, line_debit, line_credit in cursor.fetchall():
            check.problems.append(
                f"account {pk} ({code} {cur} {party}): cached {debit}/{credit}, "
                f"lines {line_debit}/{line_credit}"
            )
        cursor.execute(
            "SELECT entry_id, currency FROM ("  # noqa: S608
            "SELECT entry_id, currency, SUM(CASE WHEN side = 'debit' THEN amount ELSE -amount END) "
            f"AS net FROM {_LINE} GROUP BY entry_id, currency) n WHERE net <> 0 ORDER BY entry_id"
        )
        for entry_id, cur in cursor.fetchall():
            check.problems.append(f"entry {entry_id} does not balance in {cur}")
        cursor.execute(
            f"SELECT e.id FROM {_ENTRY} e WHERE NOT EXISTS "  # noqa: S608
            f"(SELECT 1 FROM {_LINE} l WHERE l.entry_id = e.id) ORDER BY e.id"
        )
        for (entry_id,) in cursor.fetchall():
            check.problems.append(f"entry {entry_id} has no lines")
    return check


@dataclass(frozen=True, slots=True)
class ScheduleReconciliation:
    currency: str
    ledger_deferred: Decimal  # the deferred_revenue balance
    scheduled: Decimal  # what the schedules have still to recognize

    @property
    def difference(self) -> Decimal:
        return self.ledger_deferred - self.scheduled


def deferred_revenue_reconciliation() -> list[ScheduleReconciliation]:
    """Deferred revenue in the ledger against what the recognition schedules still owe.

    Equal when every amount credited to deferred revenue has its schedule (which is how billing
    books invoices): a difference means a deferred amount nothing will ever recognize, or a
    schedule whose amount was never booked.
    """
    ledger = dict(
        Account.objects.filter(code=AccountCode.DEFERRED_REVENUE)
        .values("currency")
        .annotate(total=Sum("balance"))
        .values_list("currency", "total")
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT currency, SUM(amount - reduced_amount - recognized_amount) "  # noqa: S608
            f"FROM {RecognitionSchedule._meta.db_table} GROUP BY currency"
        )
        scheduled = dict(cursor.fetchall())
    return [
        ScheduleReconciliation(cur, ledger.get(cur, ZERO), scheduled.get(cur, ZERO))
        for cur in sorted(set(ledger) | set(scheduled))
    ]
