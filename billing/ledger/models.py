"""The double-entry ledger: accounts with cached balances, immutable journal entries and lines,
and revenue-recognition schedules.

Rules the database itself enforces (migrations 0002 to 0004): every entry has lines and balances
per currency (a deferred constraint trigger per entry, checked at commit), every line refers to
an existing entry and account in the account's currency and only the transaction that created
an entry adds its lines (checked once per INSERT statement), posted entries and lines are never
updated or deleted, accounts are never deleted and never change their code, currency, type or
party. Amounts are positive with a side (debit or credit).

The ledger knows nothing of invoices or customers: an entry's source is an opaque
(source_type, source_id) pair, a schedule references an opaque source line, and an account's
`party` is an opaque sub-ledger key (for example "customer:42" on a receivable).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.db import models
from django.db.models import Case, F, Q, When

from core.money import DECIMAL_PLACES, MAX_DIGITS


def _money(**kwargs: object) -> models.DecimalField:
    return models.DecimalField(max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES, **kwargs)  # type: ignore[arg-type]


ONE_DAY = timedelta(days=1)
CURRENCY_ISO = Q(currency__regex=r"^[A-Z]{3}$")


class Side(models.TextChoices):
    DEBIT = "debit", "Debit"
    CREDIT = "credit", "Credit"


class AccountType(models.TextChoices):
    ASSET = "asset", "Asset"
    LIABILITY = "liability", "Liability"
    EQUITY = "equity", "Equity"
    REVENUE = "revenue", "Revenue"
    CONTRA_REVENUE = "contra_revenue", "Contra-revenue"
    EXPENSE = "expense", "Expense"


# Assets, expenses and contra-revenue grow with debits; the others with credits.
DEBIT_NORMAL_TYPES = (AccountType.ASSET, AccountType.EXPENSE, AccountType.CONTRA_REVENUE)


class AccountCode(models.TextChoices):
    """The chart of accounts; every currency gets its own copy of each, created on first use."""

    CASH = "cash", "Cash (gateway clearing)"
    ACCOUNTS_RECEIVABLE = "accounts_receivable", "Accounts receivable"
    DISPUTED_FUNDS = "disputed_funds", "Funds held in dispute"
    DEFERRED_REVENUE = "deferred_revenue", "Deferred revenue"
    TAX_PAYABLE = "tax_payable", "Tax payable"
    CUSTOMER_CREDIT = "customer_credit", "Customer credit"
    SUBSCRIPTION_REVENUE = "subscription_revenue", "Subscription revenue"
    REFUNDS_AND_CREDITS = "refunds_and_credits", "Refunds and credits"
    BAD_DEBT = "bad_debt", "Bad debt"
    CHARGEBACK_LOSSES = "chargeback_losses", "Chargeback losses and dispute fees"


CHART: dict[str, str] = {
    AccountCode.CASH: AccountType.ASSET,
    AccountCode.ACCOUNTS_RECEIVABLE: AccountType.ASSET,
    AccountCode.DISPUTED_FUNDS: AccountType.ASSET,
    AccountCode.DEFERRED_REVENUE: AccountType.LIABILITY,
    AccountCode.TAX_PAYABLE: AccountType.LIABILITY,
    AccountCode.CUSTOMER_CREDIT: AccountType.LIABILITY,
    AccountCode.SUBSCRIPTION_REVENUE: AccountType.REVENUE,
    AccountCode.REFUNDS_AND_CREDITS: AccountType.CONTRA_REVENUE,
    AccountCode.BAD_DEBT: AccountType.EXPENSE,
    AccountCode.CHARGEBACK_LOSSES: AccountType.EXPENSE,
}

REVENUE_CODES = tuple(code for code, kind in CHART.items() if kind == AccountType.REVENUE)


def _chart_pairs() -> Q:
    condition = Q()
    for code, kind in CHART.items():
        condition |= Q(code=code, type=kind)
    return condition


class Account(models.Model):
    """One account of the chart in one currency (and optionally one party's sub-ledger).

    Its running totals are kept current by `ledger_post` in the same transaction as the lines,
    so a balance is one row whatever the history; `balance` is computed by PostgreSQL from the
    totals and the account's normal side (debit for assets, expenses and contra-revenue).
    """

    code = models.CharField(max_length=32, choices=AccountCode.choices)
    currency = models.CharField(max_length=3)
    party = models.CharField(
        max_length=64,
        blank=True,
        default="",
        help_text='Opaque sub-ledger key, for example "customer:42"; empty for the main account.',
    )
    type = models.CharField(max_length=16, choices=AccountType.choices)
    debit_total = _money(default=0)
    credit_total = _money(default=0)
    balance = models.GeneratedField(
        expression=Case(
            When(type__in=DEBIT_NORMAL_TYPES, then=F("debit_total") - F("credit_total")),
            default=F("credit_total") - F("debit_total"),
        ),
        output_field=models.DecimalField(max_digits=MAX_DIGITS + 1, decimal_places=DECIMAL_PLACES),
        db_persist=True,
    )
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["code", "currency", "party"], name="ledger_account_unique"
            ),
            models.CheckConstraint(condition=CURRENCY_ISO, name="ledger_account_currency_iso"),
            models.CheckConstraint(condition=_chart_pairs(), name="ledger_account_in_chart"),
            models.CheckConstraint(
                condition=Q(debit_total__gte=0) & Q(credit_total__gte=0),
                name="ledger_account_totals_not_negative",
            ),
        ]
        ordering = ["currency", "code", "party"]

    def __str__(self) -> str:
        party = f" [{self.party}]" if self.party else ""
        return f"{self.code} {self.currency}{party}"

    @property
    def normal_side(self) -> str:
        return Side.DEBIT if self.type in DEBIT_NORMAL_TYPES else Side.CREDIT


class JournalEntry(models.Model):
    """A balanced, immutable set of lines; corrected only by a reversing entry.

    The idempotency key is chosen by the caller (derived from what is being booked, like
    "invoice:42:finalized"), so a retried posting finds the first one instead of booking twice;
    `input_hash` tells a true retry from a different posting that reuses a key.
    """

    idempotency_key = models.CharField(max_length=200)
    input_hash = models.CharField(max_length=64)
    effective_date = models.DateField(db_index=True)
    source_type = models.CharField(max_length=40)
    source_id = models.CharField(max_length=64, blank=True)
    description = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField()
    reverses = models.OneToOneField(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="reversed_by",
        help_text="The entry this one reverses (an entry is reversed at most once).",
    )
    created_txid = models.BigIntegerField(
        db_default=models.Func(function="txid_current"),
        editable=False,
        help_text="The transaction that created the entry, the only one that may add its lines "
        "(set by PostgreSQL).",
    )

    class Meta:
        verbose_name_plural = "journal entries"
        indexes = [models.Index(fields=["source_type", "source_id"])]
        constraints = [
            models.UniqueConstraint(fields=["idempotency_key"], name="ledger_entry_key_unique"),
            models.CheckConstraint(
                condition=~Q(reverses=F("id")), name="ledger_entry_not_self_reversing"
            ),
        ]
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"#{self.pk} {self.effective_date} {self.idempotency_key}"


class JournalLine(models.Model):
    # No foreign-key constraints: the statement-level check of migration 0004 verifies that
    # the entry and the account exist and that the line is in the account's currency. Entries
    # and accounts are never deleted nor re-keyed (triggers), so that lookup is as good as a
    # foreign key, without the key-share row lock a foreign key takes on the account rows that
    # every posting also updates (which cost more than the rest of the posting).
    entry = models.ForeignKey(
        JournalEntry, on_delete=models.PROTECT, related_name="lines", db_constraint=False
    )
    # the (account, entry) index serves lookups by account
    account = models.ForeignKey(
        Account,
        on_delete=models.PROTECT,
        related_name="lines",
        db_constraint=False,
        db_index=False,
    )
    side = models.CharField(max_length=6, choices=Side.choices)
    amount = _money()
    currency = models.CharField(max_length=3, help_text="Always the account's currency.")

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="ledger_line_amount_positive"),
            models.CheckConstraint(
                condition=Q(side__in=Side.values), name="ledger_line_side_valid"
            ),
        ]
        indexes = [models.Index(fields=["account", "entry"])]
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.side} {self.amount} {self.currency} ({self.account_id})"


class RecognitionSchedule(models.Model):
    """How one billed amount moves from deferred revenue to revenue, day by day.

    The amount recognized through day k of an N-day service period [start, end) is
    round_half_up(effective_amount * k / N): cumulative, so the daily increments always add up
    to the amount exactly. `reduced_amount` (credits and refunds) lowers the effective amount;
    `recognized_amount` is what this schedule has recognized net of the share of reductions
    moved to contra-revenue, always equal to the cumulative target at `recognized_through`.

    A negative amount is a credit line over a service period (the unused time of a plan
    change): it gives revenue back day by day over the days it credits, and its reduced and
    recognized amounts are negative too (every amount of a schedule has its amount's sign).
    """

    source_type = models.CharField(max_length=40, default="invoice_line")
    source_id = models.CharField(max_length=64)
    currency = models.CharField(max_length=3)
    amount = _money(help_text="Net of tax and discount, in the currency's minor units.")
    service_start = models.DateField()
    service_end = models.DateField(help_text="Exclusive.")
    revenue_account = models.CharField(
        max_length=32,
        choices=[(code, AccountCode(code).label) for code in REVENUE_CODES],
        default=AccountCode.SUBSCRIPTION_REVENUE,
    )
    reduced_amount = _money(default=0)
    recognized_amount = _money(default=0)
    recognized_through = models.DateField(
        help_text="The last day recognized; the day before the start when none is."
    )
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source_type", "source_id"], name="ledger_schedule_source_unique"
            ),
            models.CheckConstraint(condition=CURRENCY_ISO, name="ledger_schedule_currency_iso"),
            models.CheckConstraint(condition=~Q(amount=0), name="ledger_schedule_not_zero"),
            models.CheckConstraint(
                condition=Q(service_end__gt=F("service_start")), name="ledger_schedule_period"
            ),
            # From zero to the amount, whichever its sign: 0 <= reduced <= amount, and
            # 0 <= recognized <= amount - reduced (both <= 0, and >=, for a negative amount).
            models.CheckConstraint(
                condition=Q(amount__gt=0, reduced_amount__gte=0, reduced_amount__lte=F("amount"))
                | Q(amount__lt=0, reduced_amount__lte=0, reduced_amount__gte=F("amount")),
                name="ledger_schedule_reduction_within_amount",
            ),
            models.CheckConstraint(
                condition=Q(
                    amount__gt=0,
                    recognized_amount__gte=0,
                    recognized_amount__lte=F("amount") - F("reduced_amount"),
                )
                | Q(
                    amount__lt=0,
                    recognized_amount__lte=0,
                    recognized_amount__gte=F("amount") - F("reduced_amount"),
                ),
                name="ledger_schedule_recognized_within_amount",
            ),
            models.CheckConstraint(
                condition=Q(recognized_through__gte=F("service_start") - ONE_DAY)
                & Q(recognized_through__lt=F("service_end")),
                name="ledger_schedule_through_in_period",
            ),
            models.CheckConstraint(
                condition=Q(revenue_account__in=REVENUE_CODES),
                name="ledger_schedule_revenue_account",
            ),
        ]
        indexes = [
            models.Index(
                fields=["currency", "recognized_through"],
                name="ledger_schedule_pending",
                condition=Q(recognized_through__lt=F("service_end") - ONE_DAY),
            )
        ]
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.source_type}:{self.source_id} {self.amount} {self.currency}"

    @property
    def effective_amount(self) -> Decimal:
        return self.amount - self.reduced_amount


class RecognitionReduction(models.Model):
    """A credit or refund of part of a schedule, and the entry that booked it. Append-only.

    Its amounts have the schedule's sign: a negative schedule (a credit line) is reduced by a
    negative amount, when the invoice that gave the credit is voided."""

    class Kind(models.TextChoices):
        CREDIT_NOTE = "credit_note", "Credit note"
        REFUND = "refund", "Refund"

    schedule = models.ForeignKey(
        RecognitionSchedule, on_delete=models.PROTECT, related_name="reductions"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    amount = _money()
    effective_date = models.DateField()
    counterparty = models.CharField(max_length=32, choices=AccountCode.choices)
    counterparty_party = models.CharField(max_length=64, blank=True, default="")
    tax = _money(default=0)
    recognized_share = _money(help_text="Moved from revenue to contra-revenue.")
    deferred_share = _money(help_text="Reversed out of deferred revenue.")
    idempotency_key = models.CharField(max_length=200, unique=True)
    entry = models.OneToOneField(JournalEntry, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=~Q(amount=0), name="ledger_reduction_not_zero"),
            models.CheckConstraint(
                condition=Q(
                    amount__gt=0, tax__gte=0, recognized_share__gte=0, deferred_share__gte=0
                )
                | Q(amount__lt=0, tax__lte=0, recognized_share__lte=0, deferred_share__lte=0),
                name="ledger_reduction_signs",
            ),
            models.CheckConstraint(
                condition=Q(amount=F("recognized_share") + F("deferred_share")),
                name="ledger_reduction_split",
            ),
        ]
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} of schedule {self.schedule_id}"
