"""Property tests: random postings keep the ledger sound; recognition adds up exactly."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.ledger.models import (
    CHART,
    AccountCode,
    JournalLine,
    RecognitionReduction,
    RecognitionSchedule,
)
from billing.ledger.postings import post_invoice_finalized
from billing.ledger.recognition import (
    recognition_reduce,
    recognition_run,
    recognition_schedule_create,
    recognition_target,
)
from billing.ledger.reports import (
    deferred_revenue_reconciliation,
    ledger_check,
    revenue_by_month,
    trial_balance,
)
from billing.ledger.selectors import account_balance
from billing.ledger.services import EntrySpec, Posting, ledger_post_batch
from core.money import minor_units

CURRENCIES = ("USD", "JPY", "KWD")
DB_SETTINGS = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
_keys = itertools.count()


@contextmanager
def _own_database_state() -> Iterator[None]:
    """Run one hypothesis example in a savepoint rolled back at its end.

    The examples of a test share the test's transaction; without this, the recognition days
    booked by one example would be seen as already run by the next.
    """
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


def _money(minor: int, currency: str) -> Decimal:
    return Decimal(minor).scaleb(-minor_units(currency))


@st.composite
def balanced_entries(draw: st.DrawFn) -> list[Posting]:
    """A balanced entry: random debits and credits in one or two currencies."""
    lines: list[Posting] = []
    for currency in draw(
        st.lists(st.sampled_from(CURRENCIES), min_size=1, max_size=2, unique=True)
    ):
        codes = st.sampled_from(list(CHART))
        debits = draw(st.lists(st.integers(1, 10**7), min_size=1, max_size=3))
        credits_count = draw(st.integers(1, 3))
        total = sum(debits)
        # split the total into `credits_count` positive parts
        cuts = sorted(draw(st.sets(st.integers(1, max(total - 1, 1)), max_size=credits_count - 1)))
        parts = [b - a for a, b in zip([0, *cuts], [*cuts, total], strict=True) if b > a]
        parties = st.sampled_from(["", "customer:1", "customer:2"])
        lines += [
            Posting.debit(draw(codes), currency, _money(m, currency), draw(parties)) for m in debits
        ]
        lines += [
            Posting.credit(draw(codes), currency, _money(m, currency), draw(parties)) for m in parts
        ]
    return draw(st.permutations(lines))


@pytest.mark.django_db
@DB_SETTINGS
@given(batch=st.lists(balanced_entries(), min_size=1, max_size=6))
def test_random_balanced_postings_keep_cached_balances_equal_to_their_lines(
    batch: list[list[Posting]],
) -> None:
    with _own_database_state():
        _post_and_check(batch)


def _post_and_check(batch: list[list[Posting]]) -> None:
    # when random balanced entries are posted (as a batch)
    ledger_post_batch(
        entries=[
            EntrySpec(
                idempotency_key=f"prop:{next(_keys)}",
                effective_date=date(2026, 1, 1) + timedelta(days=n),
                source_type="test",
                source_id=str(n),
                description="",
                lines=lines,
            )
            for n, lines in enumerate(batch)
        ]
    )

    # then every cached balance equals its lines and the trial balance balances
    check = ledger_check()
    assert check.problems == []
    now = trial_balance()
    assert now.balanced
    assert trial_balance(as_of=date(2099, 1, 1)).rows == now.rows
    for line in JournalLine.objects.select_related("account")[:5]:
        read = account_balance(
            code=line.account.code, currency=line.currency, party=line.account.party
        )
        assert (read.debit_total, read.credit_total) == (
            line.account.debit_total,
            line.account.credit_total,
        )


@settings(max_examples=300)
@given(
    currency=st.sampled_from(CURRENCIES),
    minor=st.integers(1, 10**9),
    total_days=st.integers(1, 400),
)
def test_daily_increments_add_up_exactly_and_differ_by_one_minor_unit_at_most(
    currency: str, minor: int, total_days: int
) -> None:
    amount = _money(minor, currency)
    targets = [recognition_target(amount, k, total_days, currency) for k in range(total_days + 1)]
    increments = [b - a for a, b in itertools.pairwise(targets)]

    assert targets[0] == 0
    assert sum(increments) == amount
    unit = _money(1, currency)
    low = _money(minor // total_days, currency)
    assert all(inc in (low, low + unit) for inc in increments)


@st.composite
def schedules(draw: st.DrawFn) -> tuple[str, int, int, int, list[tuple[int, int]]]:
    """(currency, amount in minor units, start offset, days, [(reduction day, share %)])."""
    currency = draw(st.sampled_from(CURRENCIES))
    minor = draw(st.integers(1, 10**6))
    start = draw(st.integers(0, 40))
    length = draw(st.integers(1, 120))
    reductions = draw(st.lists(st.tuples(st.integers(0, 170), st.integers(1, 60)), max_size=2))
    return currency, minor, start, length, reductions


def _net_revenue(currency: str) -> Decimal:
    """Revenue less contra-revenue, from the monthly report (i.e. from the lines)."""
    return sum((r.net for r in revenue_by_month(currency=currency)), Decimal(0))


@pytest.mark.django_db
@DB_SETTINGS
@given(
    drawn=st.lists(schedules(), min_size=1, max_size=4),
    run_every=st.integers(1, 45),
)
def test_recognition_ends_with_each_schedule_recognized_exactly(
    drawn: list[tuple[str, int, int, int, list[tuple[int, int]]]], run_every: int
) -> None:
    with _own_database_state():
        _play_schedules(drawn, run_every)


def _play_schedules(
    drawn: list[tuple[str, int, int, int, list[tuple[int, int]]]], run_every: int
) -> None:
    # given invoiced and scheduled lines in USD, JPY and KWD, some reduced on random days
    # (before, during or after their service), and runs that skip days
    origin = date(2026, 1, 1)
    prefix = f"p{next(_keys)}"
    created: list[tuple[RecognitionSchedule, list[tuple[int, int]]]] = []
    for n, (currency, minor, offset, length, reductions) in enumerate(drawn):
        amount = _money(minor, currency)
        start = origin + timedelta(days=offset)
        post_invoice_finalized(
            key=f"{prefix}:invoice:{n}",
            currency=currency,
            effective_date=start,
            receivable=amount,
            deferred=amount,
            source_id=f"{prefix}:{n}",
        )
        schedule = recognition_schedule_create(
            source_id=f"{prefix}:{n}",
            currency=currency,
            amount=amount,
            service_start=start,
            service_end=start + timedelta(days=length),
        )
        created.append((schedule, reductions))
    reductions_by_day: dict[int, list[tuple[RecognitionSchedule, int]]] = {}
    for schedule, reductions in created:
        for reduction_offset, percent in reductions:
            reductions_by_day.setdefault(reduction_offset, []).append((schedule, percent))

    # when the days go by
    for offset in range(0, 180):
        day = origin + timedelta(days=offset)
        for number, (schedule, percent) in enumerate(reductions_by_day.get(offset, [])):
            schedule.refresh_from_db()
            left = schedule.effective_amount
            share = (left * percent / 100).quantize(_money(1, schedule.currency))
            if share > 0:
                recognition_reduce(
                    schedule=schedule,
                    amount=share,
                    effective_date=day,
                    kind=RecognitionReduction.Kind.REFUND,
                    counterparty=AccountCode.CASH,
                    idempotency_key=f"{prefix}:reduce:{schedule.pk}:{offset}:{number}",
                )
        if offset % run_every == 0:
            recognition_run(day=day)
    recognition_run(day=origin + timedelta(days=180))

    # then every schedule recognized exactly its amount less its reductions, nothing is left
    # deferred, and net revenue is what was invoiced less what was refunded
    for schedule, _ in created:
        schedule.refresh_from_db()
        assert schedule.recognized_amount == schedule.amount - schedule.reduced_amount
    assert all(r.ledger_deferred == r.scheduled == 0 for r in deferred_revenue_reconciliation())
    for currency in CURRENCIES:
        expected = sum(
            (s.amount - s.reduced_amount for s, _ in created if s.currency == currency), Decimal(0)
        )
        assert _net_revenue(currency) == expected
    assert ledger_check().ok
