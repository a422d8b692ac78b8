"""Revenue recognition: deferred revenue becomes revenue day by day over each service period.

The rule (DESIGN.md section 6). A schedule recognizes `effective_amount` (its amount less the
credits and refunds that reduced it) over the N days of its service period [start, end). The
amount recognized through the k-th day is cumulative,

    target(k) = round_half_up(effective_amount * k / N)

so each day's increment is target(k) - target(k - 1) and the increments of a schedule always add
up exactly to its amount, whatever the rounding on single days.

A daily run posts ONE entry per currency and day (idempotency key "recognition:{currency}:{day}"):
Dr deferred_revenue / Cr each revenue account, for everything that became recognizable that day.
Missed days are caught up, each on its own date, so revenue lands in the right month.

A schedule with a negative amount is a credit line with a service period (the unused time a
plan change gives back): the same rule, rounded half away from zero, takes its share of each
day back out of revenue into deferred revenue (where the credit line's finalization put it), so
the days it credits earn nothing on the old price. A day's entry nets each account's amounts:
Dr or Cr deferred_revenue, Cr or Dr each revenue account.

A credit or a refund of part of a schedule, effective on day d (d's own revenue not yet earned),
reduces the schedule proportionally (`recognition_reduce`). With k = the days before d,
E = the effective amount before and E' = E - amount after the reduction:

    recognized share  = target_E(k) - target_E'(k)    Dr refunds_and_credits (contra-revenue)
    deferred share    = amount - recognized share       Dr deferred_revenue
    tax (if any)                                        Dr tax_payable
    amount + tax                                        Cr the counterparty: accounts_receivable
                                                        (taken off what is due), customer_credit
                                                        (credited to the balance) or cash (refund)

and the rest of the schedule is recognized as target_E'(k'), the same schedule reduced in the same
proportion. If the daily run had not yet recognized the days before d (or had already recognized
some from d on), the same entry first recognizes (or gives back) those days at the old amount,
so the split never depends on when the run happened. A negative schedule is reduced by a
negative amount (its invoice voided): the same lines, each on the other side.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import F, Q, QuerySet

from billing.ledger.models import (
    REVENUE_CODES,
    AccountCode,
    JournalEntry,
    RecognitionReduction,
    RecognitionSchedule,
    Side,
)
from billing.ledger.services import EntrySpec, Posting, ledger_post, ledger_post_batch
from core import clock
from core.bulk import array_literal
from core.errors import ConflictError, ValidationError
from core.money import is_rounded, minor_units, normalize_currency, parse_decimal, quantum

ONE_DAY = timedelta(days=1)
ZERO = Decimal("0")
RECOGNITION_SOURCE = "recognition"
REDUCTION_COUNTERPARTIES = (
    AccountCode.ACCOUNTS_RECEIVABLE,
    AccountCode.CUSTOMER_CREDIT,
    AccountCode.CASH,
)


def recognition_target(amount: Decimal, days: int, total_days: int, currency: str) -> Decimal:
    """round_half_up(amount * days / total_days) in `currency`, computed exactly in minor units
    (half away from zero: a negative amount is the mirror of its positive)."""
    scale = 10 ** minor_units(currency)
    minor = int(amount * scale)
    # Half up on non-negative integers: floor((2 * a * k + n) / (2 * n)).
    target = (2 * abs(minor) * days + total_days) // (2 * total_days)
    return (Decimal(target if minor >= 0 else -target) / scale).quantize(quantum(currency))


def recognition_key(currency: str, day: date) -> str:
    return f"recognition:{currency}:{day.isoformat()}"


def _days(schedule: RecognitionSchedule) -> int:
    return (schedule.service_end - schedule.service_start).days


def _elapsed(schedule: RecognitionSchedule, through: date) -> int:
    """Days of the period up to and including `through`, within [0, N]."""
    return min(_days(schedule), max(0, (through - schedule.service_start).days + 1))


@dataclass(frozen=True)
class ScheduleSpec:
    """The terms of one schedule: `amount` (net of tax and discount) over [start, end); negative
    for a credit line."""

    source_id: str | int
    currency: str
    amount: Decimal
    service_start: date
    service_end: date
    source_type: str = "invoice_line"
    revenue_account: str = AccountCode.SUBSCRIPTION_REVENUE


def recognition_schedule_create(**terms: Any) -> RecognitionSchedule:
    """Schedule one source: `recognition_schedules_create` of `ScheduleSpec(**terms)`."""
    return recognition_schedules_create(specs=[ScheduleSpec(**terms)])[0]


def recognition_schedules_create(*, specs: Sequence[ScheduleSpec]) -> list[RecognitionSchedule]:
    """Schedule each source's amount for recognition over its service period, in one insert.

    Posts nothing: the amounts reach deferred revenue with the invoices' entries. Idempotent on
    the source: a source already scheduled with the same terms keeps its schedule (returned),
    with other terms is a ConflictError. Returned in the order given.
    """
    rows = [_schedule_row(spec) for spec in specs]
    if not rows:
        return []
    now = clock.now()
    for row in rows:
        row.recognized_through = row.service_start - ONE_DAY
        row.created_at = row.updated_at = now
    with transaction.atomic(), connection.cursor() as cursor:
        # A concurrent twin of a source waits on the unique index, then is found below.
        cursor.execute(
            _INSERT_SCHEDULES,
            [
                now,
                now,
                array_literal([row.source_type for row in rows]),
                array_literal([row.source_id for row in rows]),
                array_literal([row.currency for row in rows]),
                array_literal([row.amount for row in rows]),
                array_literal([row.service_start for row in rows]),
                array_literal([row.service_end for row in rows]),
                array_literal([row.revenue_account for row in rows]),
                array_literal([row.recognized_through for row in rows]),
            ],
        )
        inserted = {(source_type, source_id): pk for pk, source_type, source_id in cursor}
        stored: dict[tuple[str, str], RecognitionSchedule] = {}
        for row in rows:
            key = (row.source_type, row.source_id)
            if key in inserted:
                row.pk = inserted[key]
                row._state.adding = False
                stored[key] = row
        missing = [row for row in rows if (row.source_type, row.source_id) not in stored]
        if missing:
            stored.update(
                ((schedule.source_type, schedule.source_id), schedule)
                for schedule in RecognitionSchedule.objects.filter(
                    source_type__in={row.source_type for row in missing},
                    source_id__in=[row.source_id for row in missing],
                )
            )
    result = []
    for row in rows:
        key = (row.source_type, row.source_id)
        schedule = stored[key]
        if any(getattr(schedule, name) != getattr(row, name) for name in _TERMS):
            raise ConflictError(
                f"{key[0]} {key[1]} already has a recognition schedule with other terms.",
                code="ledger_schedule_exists",
                param="source_id",
            )
        result.append(schedule)
    return result


# The schedules in one statement (the model's bulk_create builds one placeholder per value);
# the sources already scheduled are left as they are and read back by the caller.
_INSERT_SCHEDULES = """
INSERT INTO ledger_recognitionschedule (
    source_type, source_id, currency, amount, service_start, service_end, revenue_account,
    reduced_amount, recognized_amount, recognized_through, created_at, updated_at
)
SELECT source_type, source_id, currency, amount, service_start, service_end, revenue_account,
       0, 0, recognized_through, %s, %s
FROM unnest(%s::varchar[], %s::varchar[], %s::varchar[], %s::numeric[], %s::date[],
            %s::date[], %s::varchar[], %s::date[])
     WITH ORDINALITY AS r(source_type, source_id, currency, amount, service_start, service_end,
                          revenue_account, recognized_through, n)
ORDER BY n
ON CONFLICT (source_type, source_id) DO NOTHING
RETURNING id, source_type, source_id
"""


_TERMS = ("currency", "amount", "service_start", "service_end", "revenue_account")


def _schedule_row(spec: ScheduleSpec) -> RecognitionSchedule:
    currency = normalize_currency(spec.currency)
    amount = parse_decimal(spec.amount)
    if amount == 0 or not is_rounded(amount, currency):
        raise ValidationError(
            f"A schedule's amount is not zero, in whole {currency} minor units.",
            code="invalid_amount",
            param="amount",
        )
    if spec.service_end <= spec.service_start:
        raise ValidationError(
            "The service period ends after it starts.", code="invalid_period", param="service_end"
        )
    if spec.revenue_account not in REVENUE_CODES:
        raise ValidationError(
            f"{spec.revenue_account!r} is not a revenue account.",
            code="ledger_unknown_account",
            param="revenue_account",
        )
    return RecognitionSchedule(
        source_type=spec.source_type,
        source_id=str(spec.source_id),
        currency=currency,
        amount=amount.quantize(quantum(currency)),
        service_start=spec.service_start,
        service_end=spec.service_end,
        revenue_account=spec.revenue_account,
    )


@dataclass(frozen=True, slots=True)
class RecognitionRunResult:
    entries: int
    schedules: int

    def as_counts(self) -> dict[str, int]:
        return {"entries": self.entries, "schedules": self.schedules}


def recognition_run(*, day: date) -> RecognitionRunResult:
    """Recognize everything recognizable up to and including `day`; safe to run twice.

    Per currency, in one transaction: the pending schedules are locked (id order), each day from
    the earliest one still pending to `day` that has no recognition entry yet gets one entry
    (days already booked are never rewritten; what a schedule created late owes for them goes
    to the first day still open), and the schedules move on. A few queries per currency,
    however many schedules.
    """
    pending = RecognitionSchedule.objects.filter(
        Q(recognized_through__lt=day), Q(recognized_through__lt=F("service_end") - ONE_DAY)
    )
    currencies = sorted(set(pending.values_list("currency", flat=True).distinct()))
    entries = schedules = 0
    for currency in currencies:
        posted, moved = _run_currency(currency, day, pending.filter(currency=currency))
        entries += posted
        schedules += moved
    return RecognitionRunResult(entries=entries, schedules=schedules)


def recognition_daily_work(day: date) -> dict[str, int]:
    """The daily work at midnight starting `day`: recognize the day that just ended."""
    return recognition_run(day=day - ONE_DAY).as_counts()


def _run_currency(
    currency: str, day: date, pending: QuerySet[RecognitionSchedule]
) -> tuple[int, int]:
    with transaction.atomic():
        schedules = list(
            pending.select_for_update()
            .order_by("id")
            .only(
                "id",
                "amount",
                "reduced_amount",
                "recognized_amount",
                "recognized_through",
                "service_start",
                "service_end",
                "revenue_account",
            )
        )
        if not schedules:
            return 0, 0
        first = min(s.recognized_through for s in schedules) + ONE_DAY
        span = [first + timedelta(days=n) for n in range((day - first).days + 1)]
        booked = set(
            JournalEntry.objects.filter(
                idempotency_key__in=[recognition_key(currency, d) for d in span]
            ).values_list("effective_date", flat=True)
        )
        open_days = [d for d in span if d not in booked]
        if not open_days:
            return 0, 0
        per_day: dict[date, dict[str, Decimal]] = defaultdict(lambda: defaultdict(lambda: ZERO))
        updates = []
        for schedule in schedules:
            last_day = min(day, schedule.service_end - ONE_DAY)
            start = bisect.bisect_right(open_days, schedule.recognized_through)
            end = bisect.bisect_right(open_days, last_day)
            if start == end:
                continue
            amount, total = schedule.effective_amount, _days(schedule)
            recognized = schedule.recognized_amount
            for d in open_days[start:end]:
                target = recognition_target(amount, _elapsed(schedule, d), total, currency)
                if target != recognized:
                    per_day[d][schedule.revenue_account] += target - recognized
                    recognized = target
            updates.append((schedule.pk, recognized, open_days[end - 1]))
        specs = []
        for d in sorted(per_day):
            revenue = {code: amount for code, amount in sorted(per_day[d].items()) if amount}
            if not revenue:
                continue
            # Net amounts: what credit lines gave back that day is taken off what charges
            # earned, account by account; an account (deferred revenue too) can end on
            # either side.
            deferred = sum(revenue.values(), ZERO)
            lines = (
                [_signed_debit(AccountCode.DEFERRED_REVENUE, currency, deferred)]
                if deferred
                else []
            )
            lines += [_signed_debit(code, currency, -amount) for code, amount in revenue.items()]
            lines.sort(key=lambda posting: posting.side != Side.DEBIT)  # debits first
            specs.append(
                EntrySpec(
                    idempotency_key=recognition_key(currency, d),
                    effective_date=d,
                    source_type=RECOGNITION_SOURCE,
                    source_id=d.isoformat(),
                    description=f"Revenue recognized on {d.isoformat()} ({currency})",
                    lines=lines,
                )
            )
        ledger_post_batch(entries=specs)
        _save_progress(updates)
    return len(specs), len(updates)


def _signed_debit(code: str, currency: str, amount: Decimal, party: str = "") -> Posting:
    """A debit of `amount` to `code`, or a credit of its opposite when it is negative."""
    if amount < 0:
        return Posting.credit(code, currency, -amount, party)
    return Posting.debit(code, currency, amount, party)


def _save_progress(updates: list[tuple[int, Decimal, date]]) -> None:
    if not updates:
        return
    now = clock.now()
    table = RecognitionSchedule._meta.db_table
    with connection.cursor() as cursor:
        for start in range(0, len(updates), 5_000):
            chunk = updates[start : start + 5_000]
            values = ",".join(["(%s::bigint,%s::numeric,%s::date)"] * len(chunk))
            cursor.execute(
                f"UPDATE {table} s SET recognized_amount = u.recognized, "  # noqa: S608
                "recognized_through = u.through, updated_at = %s "
                f"FROM (VALUES {values}) u(id, recognized, through) WHERE s.id = u.id",
                [now, *(value for row in chunk for value in row)],
            )


def recognition_reduce(
    *,
    schedule: RecognitionSchedule,
    amount: Decimal,
    effective_date: date,
    idempotency_key: str,
    counterparty: str,
    kind: str = RecognitionReduction.Kind.CREDIT_NOTE,
    party: str = "",
    tax: Decimal = ZERO,
    source_id: str | int = "",
) -> RecognitionReduction:
    """Credit or refund `amount` (net of tax) of a schedule, effective at the start of a day.

    Books one entry (see the module docstring for the lines) and lowers the schedule in the same
    proportion. `amount` and `tax` have the schedule's sign (negative to take back a credit
    line). Idempotent on the key: a retry with the same terms returns the first reduction.
    """
    if kind not in RecognitionReduction.Kind.values:
        raise ValidationError("A reduction is a credit note or a refund.", param="kind")
    if counterparty not in REDUCTION_COUNTERPARTIES:
        raise ValidationError(
            "The counterparty is accounts_receivable, customer_credit or cash.",
            code="ledger_unknown_account",
            param="counterparty",
        )
    currency = schedule.currency
    # Amounts are checked as their size; the schedule's sign goes back on after.
    sign = -1 if schedule.amount < 0 else 1
    amount, tax = parse_decimal(amount, param="amount"), parse_decimal(tax, param="tax")
    amount = sign * _positive_amount(sign * amount, currency, "amount", allow_zero=False)
    tax = sign * _positive_amount(sign * tax, currency, "tax", allow_zero=True)
    terms = {
        "schedule_id": schedule.pk,
        "kind": kind,
        "amount": amount,
        "effective_date": effective_date,
        "counterparty": counterparty,
        "counterparty_party": party,
        "tax": tax,
    }
    with transaction.atomic():
        locked = RecognitionSchedule.objects.select_for_update().get(pk=schedule.pk)
        previous = RecognitionReduction.objects.filter(idempotency_key=idempotency_key).first()
        if previous is not None:
            if any(getattr(previous, name) != value for name, value in terms.items()):
                raise ConflictError(
                    f"The idempotency key {idempotency_key!r} was used for another reduction.",
                    code="ledger_key_reused",
                    param="idempotency_key",
                )
            return previous
        before = locked.effective_amount
        if abs(amount) > abs(before):
            raise ValidationError(
                f"Only {before} {currency} of this schedule is left to reduce.",
                code="ledger_reduction_too_large",
                param="amount",
            )
        total = _days(locked)
        elapsed = min(total, max(0, (effective_date - locked.service_start).days))
        at_date = recognition_target(before, elapsed, total, currency)
        adjustment = at_date - locked.recognized_amount
        after = before - amount
        recognized_share = at_date - recognition_target(after, elapsed, total, currency)
        deferred_share = amount - recognized_share

        deferred, revenue = AccountCode.DEFERRED_REVENUE, locked.revenue_account
        lines = []
        if adjustment:
            # The debit first: deferred to revenue for days not yet recognized, revenue back to
            # deferred for days recognized past the date.
            moves = [
                _signed_debit(deferred, currency, adjustment),
                _signed_debit(revenue, currency, -adjustment),
            ]
            lines += moves if adjustment > 0 else moves[::-1]
        if recognized_share:
            lines.append(_signed_debit(AccountCode.REFUNDS_AND_CREDITS, currency, recognized_share))
        if deferred_share:
            lines.append(_signed_debit(deferred, currency, deferred_share))
        if tax:
            lines.append(_signed_debit(AccountCode.TAX_PAYABLE, currency, tax))
        lines.append(_signed_debit(counterparty, currency, -(amount + tax), party))
        entry = ledger_post(
            idempotency_key=idempotency_key,
            effective_date=effective_date,
            source_type=kind,
            source_id=str(source_id),
            description=(
                f"{RecognitionReduction.Kind(kind).label} of {amount} {currency} on "
                f"{locked.source_type} {locked.source_id}"
            ),
            lines=lines,
        )
        now = clock.now()
        locked.reduced_amount += amount
        locked.recognized_amount = recognition_target(after, elapsed, total, currency)
        locked.recognized_through = locked.service_start + timedelta(days=elapsed) - ONE_DAY
        locked.updated_at = now
        locked.save(
            update_fields=[
                "reduced_amount",
                "recognized_amount",
                "recognized_through",
                "updated_at",
            ]
        )
        return RecognitionReduction.objects.create(
            **terms,
            recognized_share=recognized_share,
            deferred_share=deferred_share,
            idempotency_key=idempotency_key,
            entry=entry,
            created_at=now,
        )


def _positive_amount(value: Decimal, currency: str, param: str, *, allow_zero: bool) -> Decimal:
    amount = parse_decimal(value, param=param)
    if amount < 0 or (amount == 0 and not allow_zero) or not is_rounded(amount, currency):
        raise ValidationError(
            f"The {param} is {'zero or more' if allow_zero else 'positive'}, in whole {currency} "
            "minor units.",
            code="invalid_amount",
            param=param,
        )
    return amount.quantize(quantum(currency))
