"""The billing run on real Celery worker processes and a real Redis broker (not eager).

End to end: a renewal falls due, the run invoices it on a worker, autocharge pays it, the
ledger books it, the webhook reaches a local receiver signed. Crash safety: a worker killed in
the middle of a run over thousands of subscriptions, a new worker, the run again: nothing billed
or charged twice, nothing left unbilled.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.db.models import Count

from bench.renewals import Worker, due_renewals_create
from billing.ledger.selectors import account_balance
from billing.models import Invoice, InvoiceLine, Payment, PaymentAttempt, SimulatedCharge
from billing.selectors import party
from billing.services.payments import payment_attempts_sweep
from core.actors import Actor
from core.services import test_clock_set as set_clock
from core.webhooks.services import webhook_endpoint_create
from subscriptions.billing_run import billing_run_start
from subscriptions.models import BillingRun, Subscription
from tests.webhooks.verification import verify_webhook

pytestmark = pytest.mark.django_db(transaction=True)
STAFF = Actor(type="user", id="7", label="alice")
JAN_15 = date(2026, 1, 15)
FEB_15 = date(2026, 2, 15)


def at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def wait_for(condition: Callable[[], bool], *, timeout: float = 120, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def run_finished(run: BillingRun) -> Callable[[], bool]:
    def check() -> bool:
        run.refresh_from_db()
        return run.status != BillingRun.Status.RUNNING

    return check


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    received: list[tuple[dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            received.append((dict(self.headers.items()), body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks", received
    server.shutdown()
    server.server_close()


def test_a_due_renewal_is_invoiced_paid_booked_and_announced_by_a_real_worker(
    start_worker: Callable[[str], Worker], receiver: tuple[str, list[Any]]
) -> None:
    # given a monthly USD 30.00 subscription started on Jan 15 with a saved Visa (autocharge),
    # and an endpoint for paid invoices
    url, received = receiver
    set_clock(to=at(JAN_15))
    due_on = due_renewals_create(count=1, code="e2e")
    subscription = Subscription.objects.get()
    endpoint = webhook_endpoint_create(url=url, enabled_events=["invoice.paid"], actor=STAFF)
    start_worker("e2e")

    # when the renewal falls due and the billing run starts
    set_clock(to=at(due_on, hour=1))
    run = billing_run_start(actor=STAFF)
    wait_for(run_finished(run), what="the billing run")

    # then the worker renewed it on one invoice, paid by autocharge, booked in the ledger
    assert due_on == FEB_15
    assert (run.status, run.due, run.processed, run.invoices, run.failed) == (
        BillingRun.Status.SUCCEEDED,
        1,
        1,
        1,
        0,
    )
    renewal = Invoice.objects.get(billing_reason=Invoice.BillingReason.SUBSCRIPTION_CYCLE)
    wait_for(
        lambda: Invoice.objects.get(pk=renewal.pk).status == Invoice.Status.PAID,
        what="the autocharge",
    )
    renewal.refresh_from_db()
    assert (renewal.total, renewal.amount_due, renewal.amount_paid) == (
        Decimal("30.00"),
        Decimal("0.00"),
        Decimal("30.00"),
    )
    line = InvoiceLine.objects.get(invoice=renewal)
    assert (line.period_start, line.period_end, line.amount) == (
        FEB_15,
        date(2026, 3, 15),
        Decimal("30.00"),
    )
    assert Payment.objects.filter(invoice=renewal).count() == 1
    subscription.refresh_from_db()
    assert (subscription.billed_through, subscription.next_transition_on) == (
        date(2026, 3, 15),
        date(2026, 3, 15),
    )
    customer_party = party(subscription.customer_id)
    assert account_balance(
        code="accounts_receivable", currency="USD", party=customer_party
    ).balance == Decimal("0.00")
    assert account_balance(code="cash", currency="USD", party="").balance == Decimal("60.00")
    # and the receiver got invoice.paid for it, signed with the endpoint's secret
    wait_for(lambda: len(received) >= 1, what="the renewal's invoice.paid webhook")
    headers, body = received[0]
    signature = next(v for k, v in headers.items() if k.lower().endswith("signature"))
    assert verify_webhook(body, signature, endpoint.secret)
    assert b'"invoice.paid"' in body
    assert renewal.number is not None
    assert renewal.number.encode() in body


def test_a_worker_killed_mid_run_leaves_nothing_billed_twice_or_unbilled(
    start_worker: Callable[[str], Worker],
) -> None:
    # given 3,000 monthly subscriptions due on Feb 15, each with a saved Visa
    count = 3_000
    set_clock(to=at(JAN_15))
    due_on = due_renewals_create(count=count, code="crash")
    set_clock(to=at(due_on, hour=1))

    # when a worker is killed (SIGKILL) in the middle of the run
    first = start_worker("first")
    run = billing_run_start(chunk_size=100, actor=STAFF)

    def midway() -> bool:
        run.refresh_from_db()
        return run.processed > 0

    wait_for(midway, what="the first chunks")
    first.kill()
    run.refresh_from_db()
    assert 0 < run.processed < count
    assert run.status == BillingRun.Status.RUNNING

    # and a new worker runs the billing run again (the dead run's queued chunks too)
    start_worker("second")
    again = billing_run_start(chunk_size=100, actor=STAFF)
    wait_for(run_finished(again), timeout=600, what="the second run")

    # then every subscription is billed exactly once for [Feb 15, Mar 15)
    renewals = InvoiceLine.objects.filter(period_start=FEB_15, kind=InvoiceLine.Kind.RECURRING)
    assert renewals.count() == count
    per_subscription = renewals.values("subscription_id").annotate(n=Count("id"))
    assert {row["n"] for row in per_subscription} == {1}
    assert not Subscription.objects.filter(next_transition_on__lte=due_on).exists()
    assert set(Subscription.objects.values_list("billed_through", flat=True)) == {date(2026, 3, 15)}
    # and nothing was charged twice: one attempt key, one simulated charge, one payment at most
    charges = SimulatedCharge.objects.values("idempotency_key").annotate(n=Count("id"))
    assert {row["n"] for row in charges} == {1}
    payments = Payment.objects.values("invoice_id").annotate(n=Count("id"))
    assert {row["n"] for row in payments} == {1}
    attempts = PaymentAttempt.objects.values("invoice_id").annotate(n=Count("id"))
    assert max(row["n"] for row in attempts) == 1
    assert again.failed == 0

    # and the sweeper settles what the dead worker left mid-charge: every renewal paid, once
    payment_attempts_sweep(stale_after=timedelta(0))
    renewed = Invoice.objects.filter(lines__period_start=FEB_15).distinct()
    assert set(renewed.values_list("status", flat=True)) == {Invoice.Status.PAID}
    assert Payment.objects.filter(invoice__in=renewed).count() == count
    assert SimulatedCharge.objects.filter(status="succeeded").count() == count + 1  # + Jan 15
