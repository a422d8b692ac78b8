"""The billing run over due monthly renewals, on real Celery worker processes.

`python -m bench renewals` (BENCH_RENEWALS=N, default 100000; BENCH_RENEWALS=500 for a smoke run):
N monthly subscriptions of N customers, each with a saved test card (autocharge on the simulated
gateway), fall due; a billing run renews them with 1 worker process, the clock moves a month, a
second run renews them again with 2 worker processes, and a third with 1 (the first run, the
first update of every copied row, is slower: see `run`). Every renewal does all a real one does:
the invoice and its line, finalization (number, ledger posting), the autocharge (attempt,
simulated charge, payment, ledger posting), the timeline event, the outbox events, the audit
log. Reported: renewals per second, the workers' peak RSS, the 1 -> 2 worker scaling, the time
1,000,000 renewals would take, and the ceiling: plain SQL inserting the same rows (INSERT ...
SELECT of the rows the run wrote into empty copies of their tables, indexes included).

The population is made through the services once (a customer, a card, a subscription) and
copied row by row with bulk_create (`due_renewals_create`, also used by tests/workers), with the
settled sub-ledger account and credit balance row each customer's first month left.
"""

from __future__ import annotations

import copy
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

from django.conf import settings
from django.db import connection

from billing.ledger.models import Account, AccountCode
from billing.models import CustomerBalance, GatewayCustomer, PaymentMethod, SimulatedCard
from billing.selectors import party
from billing.services import payment_method_attach
from catalog import services as catalog
from catalog.models import PriceList
from catalog.services import PhaseSpec, PriceSpec
from core.actors import Actor
from core.periods import add_interval
from core.services import test_clock_set
from customers.models import Customer
from customers.services import customer_create
from subscriptions.models import BillingRun, Subscription
from subscriptions.services import subscription_create

SETUP = Actor.system("bench setup")
START = date(2026, 1, 15)
BATCH = 5_000
ROOT = Path(__file__).resolve().parent.parent


def due_renewals_create(*, count: int, start: date = START, code: str = "bench") -> date:
    """`count` monthly USD 30.00 subscriptions started on `start` (first month billed and paid),
    each of its own customer with a default Visa test card; returns the day they fall due.
    The first is made through the services; the others are row copies of it. The platform
    clock must be at `start` (TEST_MODE)."""
    price_list = PriceList.objects.filter(kind=PriceList.Kind.DEFAULT).first()
    if price_list is None:
        price_list = catalog.price_list_create(
            code="default", name="Default", kind=PriceList.Kind.DEFAULT, actor=SETUP
        )
    product = catalog.product_create(code=f"{code}-news", name="The Daily News", actor=SETUP)
    plan = catalog.plan_create(
        product=product,
        code=f"{code}-monthly",
        name="Monthly",
        billing_interval="month",
        phases=[
            PhaseSpec(kind="evergreen", prices=[PriceSpec(currency="USD", amount=Decimal(30))])
        ],
        actor=SETUP,
    )
    customer = customer_create(
        email=f"{code}-0@example.com",
        name=f"{code} 0",
        external_id=f"{code}-0",
        currency="USD",
        actor=SETUP,
    )
    payment_method_attach(
        customer=customer, card_number="4242424242424242", exp_month=12, exp_year=2030, actor=SETUP
    )
    template = subscription_create(customer=customer, plan=plan, trial=False, actor=SETUP)
    subscription = template.subscription
    gateway_customer = GatewayCustomer.objects.get(customer=customer)
    method = PaymentMethod.objects.get(customer=customer, is_default=True)
    card = SimulatedCard.objects.get(token=method.reference)
    # What the first month left behind besides the rows copied below: the customer's receivable
    # sub-ledger account and credit balance row (settled: zero), so the copies renew as steadily
    # as customers with a history would.
    receivable = Account.objects.get(code=AccountCode.ACCOUNTS_RECEIVABLE, party=party(customer.pk))
    balance = CustomerBalance.objects.get(customer=customer)
    for offset in range(1, count, BATCH):
        numbers = range(offset, min(offset + BATCH, count))
        customers = Customer.objects.bulk_create(
            _copy(customer, external_id=f"{code}-{n}", email=f"{code}-{n}@example.com")
            for n in numbers
        )
        GatewayCustomer.objects.bulk_create(
            _copy(gateway_customer, customer=c, reference=f"{gateway_customer.reference}-{c.pk}")
            for c in customers
        )
        cards = SimulatedCard.objects.bulk_create(
            _copy(card, token=f"{card.token}-{c.pk}") for c in customers
        )
        PaymentMethod.objects.bulk_create(
            _copy(method, customer=c, reference=t.token)
            for c, t in zip(customers, cards, strict=True)
        )
        Subscription.objects.bulk_create(_copy(subscription, customer=c) for c in customers)
        Account.objects.bulk_create(
            _copy(receivable, party=party(c.pk), debit_total=0, credit_total=0) for c in customers
        )
        CustomerBalance.objects.bulk_create(_copy(balance, customer=c) for c in customers)
    assert subscription.next_transition_on is not None
    return subscription.next_transition_on


T = TypeVar("T")


def _copy(row: T, **changes: object) -> T:
    clone = copy.copy(row)
    clone.pk = None  # type: ignore[attr-defined]
    clone.id = None  # type: ignore[attr-defined]
    clone._state = copy.copy(row._state)  # type: ignore[attr-defined]
    clone._state.adding = True  # type: ignore[attr-defined]
    for field, value in changes.items():
        setattr(clone, field, value)
    return clone


# --- workers ------------------------------------------------------------------------------------


class Worker:
    """`celery -A config worker -P solo` as a child process, on the current database."""

    def __init__(self, name: str, *, redis_url: str, log_dir: Path) -> None:
        self.name = name
        self.log = log_dir / f"{name}.log"
        database = connection.settings_dict
        # A unix-socket directory (the embedded PostgreSQL) travels percent-encoded in the host.
        host = quote(str(database["HOST"] or ""), safe="")
        env = {
            **os.environ,
            "DATABASE_URL": (
                f"postgres://{database['USER']}:{quote(database['PASSWORD'] or '', safe='')}"
                f"@{host}:{database['PORT'] or 5432}/{database['NAME']}"
            ),
            "REDIS_URL": redis_url,
            "TEST_MODE": "true",
            # As in production: DEBUG on would keep every query's SQL in memory and time it.
            "DEBUG": "false",
            "SECRET_KEY": secrets.token_urlsafe(50),
        }
        self._file = self.log.open("wb")
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-P",
                "solo",
                "-l",
                "info",
                "-n",
                f"{name}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=ROOT,
            env=env,
            stdout=self._file,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while b" ready." not in self.log.read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker {self.name} did not start:\n{self.log.read_text()}")
            time.sleep(0.1)

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self._file.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        self._file.close()


def flush_broker(redis_url: str) -> None:
    import redis

    redis.Redis.from_url(redis_url).flushdb()


# --- the benchmark ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunResult:
    workers: int
    renewals: int
    seconds: float
    peak_rss_mb: list[float]

    @property
    def per_second(self) -> float:
        return self.renewals / self.seconds


def _table_counts() -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        )
        tables = [row[0] for row in cursor.fetchall()]
        counts = {}
        for table in tables:
            cursor.execute(f'SELECT count(*) FROM "{table}"')
            counts[table] = cursor.fetchone()[0]
    return counts


def _billing_run(workers: int, *, redis_url: str, log_dir: Path, chunk_size: int) -> RunResult:
    from subscriptions.billing_run import billing_run_start

    flush_broker(redis_url)
    started = [
        Worker(f"bench{workers}-{i}", redis_url=redis_url, log_dir=log_dir) for i in range(workers)
    ]
    try:
        for worker in started:
            worker.wait_ready()
        began = time.perf_counter()
        run = billing_run_start(chunk_size=chunk_size, actor=SETUP)
        while run.status == BillingRun.Status.RUNNING:
            time.sleep(0.2)
            run.refresh_from_db()
        seconds = time.perf_counter() - began
        rss = [worker.peak_rss_mb() for worker in started]
    finally:
        for worker in started:
            worker.stop()
    if run.failed or run.invoices != run.due:
        raise RuntimeError(f"billing run {run.pk} did not renew everything: {run.counts}")
    return RunResult(workers, run.invoices, seconds, rss)


def _sql_ceiling(before: dict[str, int], after: dict[str, int]) -> tuple[int, float]:
    """Insert the rows the run wrote, with plain SQL, into empty copies of their tables."""
    rows = 0
    seconds = 0.0
    with connection.cursor() as cursor:
        for table, count in after.items():
            added = count - before.get(table, 0)
            if added <= 0:
                continue
            copy_name = f"ceiling_{table}"[:63]
            cursor.execute(
                f'CREATE TEMP TABLE "{copy_name}" '
                f'(LIKE "{table}" INCLUDING DEFAULTS INCLUDING INDEXES)'
            )
            began = time.perf_counter()
            cursor.execute(
                f'INSERT INTO "{copy_name}" SELECT * FROM "{table}" LIMIT %s',
                [added],
            )
            seconds += time.perf_counter() - began
            rows += added
            cursor.execute(f'DROP TABLE "{copy_name}"')
    return rows, seconds


def run() -> None:
    size = int(os.environ.get("BENCH_RENEWALS", "100000"))
    # Enough chunks for both workers to stay busy to the end, at most the production size.
    chunk_size = int(os.environ.get("BENCH_CHUNK_SIZE", "0")) or max(10, min(500, size // 40))
    redis_url = os.environ.get("BENCH_REDIS_URL") or settings.REDIS_URL
    if not redis_url:
        raise RuntimeError("bench renewals needs a Redis broker: set REDIS_URL")
    settings.TEST_MODE = True
    settings.PAYMENT_GATEWAY = "simulated"
    log_dir = Path(tempfile.mkdtemp(prefix="bench-renewals-"))

    test_clock_set(to=datetime.combine(START, datetime.min.time(), tzinfo=UTC).replace(hour=12))
    began = time.perf_counter()
    due_on = due_renewals_create(count=size)
    with connection.cursor() as cursor:
        # Planner statistics, as a database with a history has them (autovacuum would take
        # a minute to gather them for the freshly copied rows).
        cursor.execute("ANALYZE")
    setup_seconds = time.perf_counter() - began
    print(f"\nrenewals: {size:,} due monthly subscriptions made in {setup_seconds:.1f} s")

    # The first run updates every subscription for the first time since the copy: its new row
    # versions cannot go on the packed pages, so it also grows the table and every index. A
    # third run, on pages with room again as a month's renewals leave them, is what the
    # 2-worker run compares with.
    results = []
    for workers, label in ((1, "1 worker, first month"), (2, "2 workers"), (1, "1 worker")):
        test_clock_set(to=datetime.combine(due_on, datetime.min.time(), tzinfo=UTC).replace(hour=1))
        before = _table_counts() if workers == 2 else {}
        result = _billing_run(workers, redis_url=redis_url, log_dir=log_dir, chunk_size=chunk_size)
        results.append(result)
        print(
            f"  {label}: {result.renewals:,} renewals in {result.seconds:.1f} s = "
            f"{result.per_second:,.0f}/s; peak RSS "
            + ", ".join(f"{rss:.0f} MB" for rss in result.peak_rss_mb)
        )
        if workers == 2:
            after = _table_counts()
            rows, sql_seconds = _sql_ceiling(before, after)
            print(
                f"  plain SQL ceiling: the same {rows:,} rows ({rows / result.renewals:.1f} per "
                f"renewal) inserted in {sql_seconds:.2f} s = "
                f"{result.renewals / sql_seconds:,.0f} renewals/s"
            )
        due_on = add_interval(due_on, Subscription.objects.first().plan.interval)  # type: ignore[union-attr]
    _, two, one = results
    print(
        f"  scaling 1 -> 2 workers: x{two.per_second / one.per_second:.2f}; "
        f"1,000,000 renewals at the 2-worker rate: {1_000_000 / two.per_second / 60:.1f} min"
    )
    print(f"  worker logs: {log_dir}")
