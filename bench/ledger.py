"""Ledger: posting throughput and balance-read latency at 1,000,000+ lines, against django-hordak.

The workload is a balanced three-line entry (Dr receivable 12.00 / Cr deferred revenue 10.00 /
Cr tax payable 2.00), posted by the platform's ledger (balances kept current in the same
transaction) and by django-hordak (which keeps no balance: it sums the legs on every read), in
the same throwaway database on the same PostgreSQL.

1. The platform's ledger is filled to LINES lines through its own batched posting service
   (`ledger_post_batch`, 500 entries per transaction): that is the fill throughput.
2. django-hordak's tables get the same number of legs with one set-based INSERT (its own API
   would take many minutes to get there; its triggers are skipped for that load only, the data
   balancing by construction), then both are ANALYZEd.
3. At that size, rounds alternate between the two: the same entries posted 500 per
   transaction, then one per transaction, through each package's API.
4. Balance reads of the deferred-revenue account, which has a third of all the lines.

django-hordak needs to be in INSTALLED_APPS, which the platform never has: this module re-runs
itself in a child process with `bench.settings`. `BENCH_LEDGER_LINES` scales the run down.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import date
from decimal import Decimal
from typing import Any

LINES = int(os.environ.get("BENCH_LEDGER_LINES", "1000002"))
BATCH = 500
ROUNDS = 3
BATCHED_PER_ROUND = 2_500  # entries per package and round, posted 500 per transaction
SINGLE_PER_ROUND = 150  # entries per package and round, one per transaction
READS = 2_000
HORDAK_READS = 20
DAY = date(2026, 1, 15)
AMOUNTS = (Decimal("12.00"), Decimal("10.00"), Decimal("2.00"))


def run() -> None:
    """Entry point for `python -m bench`: the measurement runs in a child process."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings"}
    subprocess.run([sys.executable, "-m", "bench.ledger"], env=env, check=True)  # noqa: S603


def main() -> None:
    import django

    django.setup()
    from bench.harness import throwaway_database

    with throwaway_database():
        _benchmark()


# --- the platform's ledger ------------------------------------------------------------------


class Ours:
    label = "platform ledger"

    def __init__(self) -> None:
        from billing.ledger import selectors, services

        self.services, self.selectors = services, selectors
        self.count = 0

    def _spec(self) -> Any:
        posting = self.services.Posting
        self.count += 1
        return self.services.EntrySpec(
            idempotency_key=f"bench:{self.count}",
            effective_date=DAY,
            source_type="bench",
            source_id=str(self.count),
            description="",
            lines=[
                posting.debit("accounts_receivable", "USD", AMOUNTS[0]),
                posting.credit("deferred_revenue", "USD", AMOUNTS[1]),
                posting.credit("tax_payable", "USD", AMOUNTS[2]),
            ],
        )

    def post_batch(self, size: int) -> None:
        self.services.ledger_post_batch(entries=[self._spec() for _ in range(size)])

    def post_one(self) -> None:
        spec = self._spec()
        self.services.ledger_post(
            idempotency_key=spec.idempotency_key,
            effective_date=spec.effective_date,
            source_type=spec.source_type,
            source_id=spec.source_id,
            description=spec.description,
            lines=spec.lines,
        )

    def read_balance(self) -> Decimal:
        return self.selectors.account_balance(code="deferred_revenue", currency="USD").balance


# --- django-hordak --------------------------------------------------------------------------


class Hordak:
    label = "django-hordak"

    def __init__(self) -> None:
        from django.db import transaction
        from hordak.models import Account, Leg, Transaction
        from moneyed import Money

        self.transaction, self.Leg, self.Transaction, self.Money = (
            transaction,
            Leg,
            Transaction,
            Money,
        )
        self.receivable = Account.objects.create(name="Receivable", type="AS", currencies=["USD"])
        self.deferred = Account.objects.create(name="Deferred", type="LI", currencies=["USD"])
        self.tax = Account.objects.create(name="Tax", type="LI", currencies=["USD"])
        self.count = 0

    def _post(self) -> None:
        # django-hordak's own way to book a multi-leg transaction (as its transfer_to() does)
        self.count += 1
        tx = self.Transaction.objects.create(date=DAY, description="")
        leg = self.Leg.objects.create
        leg(transaction=tx, account=self.receivable, debit=self.Money(AMOUNTS[0], "USD"))
        leg(transaction=tx, account=self.deferred, credit=self.Money(AMOUNTS[1], "USD"))
        leg(transaction=tx, account=self.tax, credit=self.Money(AMOUNTS[2], "USD"))

    def post_batch(self, size: int) -> None:
        with self.transaction.atomic():
            for _ in range(size):
                self._post()

    def post_one(self) -> None:
        with self.transaction.atomic():
            self._post()

    def read_balance(self) -> Decimal:
        # Account.get_balance(): the account's legs summed (with its children, of which it has
        # none), as django-hordak documents reading a balance
        return self.deferred.get_balance().monies()[0].amount

    def bulk_load(self, entries: int) -> None:
        from django.db import connection

        with self.transaction.atomic(), connection.cursor() as cursor:
            # The data balances by construction; hordak's per-leg triggers are skipped for this
            # load only (they would run a million times at commit).
            cursor.execute("SET LOCAL session_replication_role = replica")
            cursor.execute(
                "INSERT INTO hordak_transaction (uuid, timestamp, date, description) "
                "SELECT gen_random_uuid(), now(), %s, '' FROM generate_series(1, %s)",
                [DAY, entries],
            )
            cursor.execute(
                "INSERT INTO hordak_leg (uuid, description, account_id, transaction_id, debit, "
                "credit, currency) SELECT gen_random_uuid(), '', v.account, t.id, v.debit, "
                "v.credit, 'USD' FROM hordak_transaction t CROSS JOIN (VALUES "
                "(%s::bigint, %s::numeric, NULL::numeric), (%s, NULL, %s), (%s, NULL, %s)) "
                "v(account, debit, credit) ORDER BY t.id",
                [
                    self.receivable.pk,
                    AMOUNTS[0],
                    self.deferred.pk,
                    AMOUNTS[1],
                    self.tax.pk,
                    AMOUNTS[2],
                ],
            )
        self.count += entries


# --- measurement ----------------------------------------------------------------------------


def _timed(call: Any, *args: Any) -> float:
    started = time.perf_counter()
    call(*args)
    return time.perf_counter() - started


def _fill(ours: Ours, hordak: Hordak) -> tuple[int, float]:
    from django.db import connection

    entries = -(-LINES // 3)
    started = time.perf_counter()
    done = 0
    while done < entries:
        size = min(BATCH, entries - done)
        ours.post_batch(size)
        done += size
        if done % 50_000 < BATCH:
            print(f"  ... {done:,} entries posted", flush=True)
    seconds = time.perf_counter() - started
    hordak.bulk_load(entries)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return entries, seconds


def _benchmark() -> None:
    from django.conf import settings

    from bench.harness import measure

    settings.TEST_MODE = False  # the clock is the system clock: no test-clock read per posting
    ours, hordak = Ours(), Hordak()
    print(
        f"\nledger: balanced three-line entries, one PostgreSQL database; filling to "
        f"{LINES:,} lines each",
        flush=True,
    )
    entries, fill_seconds = _fill(ours, hordak)

    batched: dict[str, float] = {ours.label: 0.0, hordak.label: 0.0}
    single: dict[str, float] = {ours.label: 0.0, hordak.label: 0.0}
    for _ in range(ROUNDS):  # interleaved, so drift in the machine's load hits both alike
        for package in (ours, hordak):
            batched[package.label] += sum(
                _timed(package.post_batch, BATCH) for _ in range(BATCHED_PER_ROUND // BATCH)
            )
            single[package.label] += sum(_timed(package.post_one) for _ in range(SINGLE_PER_ROUND))

    expected = {p.label: AMOUNTS[1] * p.count for p in (ours, hordak)}
    assert ours.read_balance() == expected[ours.label], "the platform's balance is wrong"
    assert hordak.read_balance() == expected[hordak.label], "django-hordak's balance is wrong"
    measure("warm-up", ours.read_balance, 200)
    our_reads = measure(ours.label, ours.read_balance, READS)
    measure("warm-up", hordak.read_balance, 2)
    hordak_reads = measure(hordak.label, hordak.read_balance, HORDAK_READS)

    from billing.ledger.models import JournalLine

    lines = JournalLine.objects.count()
    print(
        f"  fill, platform ledger, {BATCH} entries per transaction: {entries:,} entries "
        f"({3 * entries:,} lines) in {fill_seconds:.1f} s = {entries / fill_seconds:,.0f} "
        "entries/s"
    )
    print(f"  then, at {lines:,} lines (platform) and {3 * hordak.count:,} legs (hordak):")
    print(f"  {'entries/s':<44}{'platform':>10}{'hordak':>10}{'ratio':>8}")
    for name, totals, count in (
        (f"{BATCH} entries per transaction", batched, ROUNDS * BATCHED_PER_ROUND),
        ("one entry per transaction", single, ROUNDS * SINGLE_PER_ROUND),
    ):
        mine, theirs = count / totals[ours.label], count / totals[hordak.label]
        print(f"  {name:<44}{mine:>10,.0f}{theirs:>10,.0f}{mine / theirs:>7.1f}x")
    print(f"  {'balance read (deferred revenue), ms':<44}{'p50':>10}{'p99':>10}")
    for sample in (our_reads, hordak_reads):
        print(
            f"  {sample.label + f' ({len(sample.durations_ns)} reads)':<44}"
            f"{sample.percentile_ms(50):>10.3f}{sample.percentile_ms(99):>10.3f}"
        )
    print(
        f"  read p50 ratio: {hordak_reads.percentile_ms(50) / our_reads.percentile_ms(50):,.0f}x\n",
        flush=True,
    )


if __name__ == "__main__":
    main()
