"""How many queries one renewal costs (the billing run's unit of work), counted in-process."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext

from bench.renewals import due_renewals_create
from billing.models import Invoice
from core.services import test_clock_set as set_clock
from subscriptions.services.daily import due_families, family_process

# Measured: see the README (Renewal throughput). The bound keeps it from creeping up unnoticed.
MAX_QUERIES_PER_RENEWAL = 115


def test_one_renewal_with_its_autocharge_costs_a_bounded_number_of_queries(
    db: None, django_capture_on_commit_callbacks: Callable[..., AbstractContextManager[Any]]
) -> None:
    # given three due monthly subscriptions with saved cards
    set_clock(to=datetime(2026, 1, 15, 12, tzinfo=UTC))
    due_on = due_renewals_create(count=3, code="queries")
    set_clock(to=datetime(due_on.year, due_on.month, due_on.day, 1, tzinfo=UTC))
    families = due_families(due_on)

    # when one family renews, its autocharge included
    with (
        CaptureQueriesContext(connection) as queries,
        django_capture_on_commit_callbacks(execute=True),
    ):
        counts = family_process(*families[0], due_on)

    # then it renewed on one paid invoice, within the query budget
    assert {name: n for name, n in counts.items() if n} == {"renewed": 1, "invoices": 1}
    renewal = Invoice.objects.get(billing_reason=Invoice.BillingReason.SUBSCRIPTION_CYCLE)
    assert renewal.status == Invoice.Status.PAID
    print(f"\nqueries per renewal (invoice + autocharge): {len(queries)}")
    assert len(queries) <= MAX_QUERIES_PER_RENEWAL
