"""The billing run's bulk renewals give exactly what renewing family by family gives."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Q
from django.test.utils import CaptureQueriesContext

from bench.renewals import due_renewals_create
from billing.ledger.models import JournalEntry, RecognitionSchedule
from billing.models import CustomerBalanceTransaction, Invoice, InvoiceLine, Payment
from billing.services import customer_balance_adjust
from catalog.models import TaxRate
from core.actors import Actor
from core.models import AuditLog
from core.services import test_clock_set as set_clock
from core.webhooks.models import OutboxEvent
from customers.models import Customer
from subscriptions.models import Subscription
from subscriptions.services import subscription_cancel
from subscriptions.services.daily import due_families, families_process, family_process
from subscriptions.services.renewals import renewals_process

STAFF = Actor.system("test")
CaptureCallbacks = Callable[..., AbstractContextManager[Any]]
# Keys that name rows (ids differ between two populations) or the population's own codes.
IDS = {
    "id",
    "customer",
    "plan",
    "phase",
    "price_list",
    "invoice",
    "sequence",
    "sequence_number",
    "number",
    "subscription_id",
    "plan_id",
    "price_id",
    "price",
    "tax_rate",
    "external_id",
    "email",
    "name",
    "reference",
    "gateway_reference",
    "idempotency_key",
    "token",
    "attempt",
    "payment_method",
    "description",
}


def _population(code: str) -> tuple[list[Customer], date]:
    """Six due monthly subscriptions: plain (0), taxed (1), a customer with credit (2), one
    paying by invoice (3), canceled at the period end (4: not a plain renewal), three seats (5)."""
    set_clock(to=datetime(2026, 1, 15, 12, tzinfo=UTC))
    due_on = due_renewals_create(count=6, code=code)
    customers = sorted(
        Customer.objects.filter(external_id__startswith=f"{code}-"), key=lambda c: c.pk
    )
    Customer.objects.filter(pk=customers[1].pk).update(country="DE")
    customer_balance_adjust(
        customer=customers[2],
        currency="USD",
        amount=Decimal("5.00"),
        kind=CustomerBalanceTransaction.Kind.ADJUSTMENT,
        actor=STAFF,
    )
    Customer.objects.filter(pk=customers[3].pk).update(autocharge=False)
    subscription_cancel(subscription=Subscription.objects.get(customer=customers[4]), actor=STAFF)
    Subscription.objects.filter(customer=customers[5]).update(quantity=3)
    return customers, due_on


def _families(customers: list[Customer], day: date) -> list[tuple[str, int]]:
    ids = set(Subscription.objects.filter(customer__in=customers).values_list("pk", flat=True))
    return [family for family in due_families(day) if family[1] in ids]


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if k not in IDS and not k.endswith("_at")}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _rows(customer: Customer) -> dict[str, Any]:
    """Everything a renewal writes for one customer, without ids and timestamps."""
    subscription = Subscription.objects.get(customer=customer)
    invoices = list(Invoice.objects.filter(customer=customer).order_by("id"))
    lines = list(InvoiceLine.objects.filter(invoice__in=invoices).order_by("id"))
    payments = list(Payment.objects.filter(customer=customer).order_by("id"))
    objects = [
        ("subscriptions.subscription", [subscription.pk]),
        ("billing.invoice", [i.pk for i in invoices]),
        ("billing.payment", [p.pk for p in payments]),
    ]
    audit = [
        (entry.action, _clean(entry.before), _clean(entry.after))
        for label, ids in objects
        for entry in AuditLog.objects.filter(
            object_type=label, object_id__in=[str(pk) for pk in ids]
        ).order_by("id")
    ]
    entries = JournalEntry.objects.filter(
        Q(source_type="invoice", source_id__in=[str(i.pk) for i in invoices])
        | Q(source_type="payment", source_id__in=[str(p.pk) for p in payments])
    ).order_by("id")
    ledger = [
        (
            entry.source_type,
            entry.description,
            entry.effective_date,
            sorted(
                (line.account.code, bool(line.account.party), line.side, line.amount)
                for line in entry.lines.select_related("account")
            ),
        )
        for entry in entries
    ]
    return {
        "subscription": _clean(
            {
                field: getattr(subscription, field)
                for field in (
                    "status",
                    "billed_through",
                    "usage_billed_through",
                    "current_period_start",
                    "current_period_end",
                    "next_transition_on",
                    "quantity",
                )
            }
        ),
        "invoices": [
            (
                i.status,
                i.billing_reason,
                i.subtotal,
                i.tax_total,
                i.total,
                i.credit_applied,
                i.amount_paid,
                i.amount_due,
                i.issued_on,
                i.due_on,
                i.number is not None,
            )
            for i in invoices
        ],
        "lines": [
            (
                line.kind,
                line.description,
                line.quantity,
                line.unit_amount,
                line.amount,
                line.tax_percent,
                line.tax_amount,
                line.total,
                line.period_start,
                line.period_end,
            )
            for line in lines
        ],
        "schedules": [
            (s.amount, s.service_start, s.service_end)
            for s in RecognitionSchedule.objects.filter(
                source_id__in=[str(line.pk) for line in lines]
            ).order_by("id")
        ],
        "payments": [(p.amount, p.status, p.method) for p in payments],
        "ledger": ledger,
        "audit": audit,
        "events": [
            (event.type, _clean(event.payload))
            for event in OutboxEvent.objects.filter(customer_id=customer.pk).order_by("id")
        ],
    }


def test_bulk_renewals_write_exactly_what_renewing_family_by_family_writes(
    db: None, django_capture_on_commit_callbacks: CaptureCallbacks
) -> None:
    # given two identical populations, one tax rate for the taxed customers
    TaxRate.objects.create(
        name="DE", country="DE", percentage=Decimal("19"), created_at=datetime.now(UTC)
    )
    one_by_one, due_on = _population("single")
    in_bulk, _ = _population("bulk")
    set_clock(to=datetime(due_on.year, due_on.month, due_on.day, 1, tzinfo=UTC))

    # when the first renews family by family and the second through the bulk path
    with django_capture_on_commit_callbacks(execute=True):
        for kind, key in _families(one_by_one, due_on):
            family_process(kind, key, due_on)
    bulk_families = _families(in_bulk, due_on)
    with django_capture_on_commit_callbacks(execute=True):
        renewed = renewals_process([key for _, key in bulk_families], due_on, actor=STAFF)
    with django_capture_on_commit_callbacks(execute=True):
        for kind, key in bulk_families:
            if key not in renewed:
                family_process(kind, key, due_on)

    # then the bulk path renewed all but the cancellation, and every row is the same
    canceled = Subscription.objects.get(customer=in_bulk[4]).pk
    assert renewed == {key for _, key in bulk_families} - {canceled}
    for single, bulk in zip(one_by_one, in_bulk, strict=True):
        expected, got = _rows(single), _rows(bulk)
        for part in expected:
            assert got[part] == expected[part], (single.external_id, part)
    # and the renewals are paid but the one of the customer paying by invoice
    cycle = Invoice.BillingReason.SUBSCRIPTION_CYCLE
    statuses = [
        list(Invoice.objects.filter(customer=c, billing_reason=cycle).values_list("status"))
        for c in in_bulk
    ]
    assert statuses == [[("paid",)], [("paid",)], [("paid",)], [("open",)], [], [("paid",)]]
    assert Invoice.objects.get(customer=in_bulk[2], billing_reason=cycle).credit_applied == 5


def test_a_chunk_renewed_twice_bills_each_period_once(
    db: None, django_capture_on_commit_callbacks: CaptureCallbacks
) -> None:
    set_clock(to=datetime(2026, 1, 15, 12, tzinfo=UTC))
    due_on = due_renewals_create(count=5, code="twice")
    set_clock(to=datetime(due_on.year, due_on.month, due_on.day, 1, tzinfo=UTC))
    families = due_families(due_on)

    with django_capture_on_commit_callbacks(execute=True):
        first = families_process(families, due_on, actor=STAFF, on_failure=_fail)
        again = families_process(families, due_on, actor=STAFF, on_failure=_fail)

    assert dict(first) == {"renewed": 5, "invoices": 5}
    assert not +again
    cycle = Invoice.BillingReason.SUBSCRIPTION_CYCLE
    assert Invoice.objects.filter(billing_reason=cycle, status="paid").count() == 5


def test_bulk_renewal_queries_do_not_grow_with_the_chunk(
    db: None, django_capture_on_commit_callbacks: CaptureCallbacks
) -> None:
    set_clock(to=datetime(2026, 1, 15, 12, tzinfo=UTC))
    due_on = due_renewals_create(count=60, code="queries")
    set_clock(to=datetime(due_on.year, due_on.month, due_on.day, 1, tzinfo=UTC))
    ids = [key for _, key in due_families(due_on)]

    counted = []
    for chunk in (ids[:10], ids[10:60]):
        with (
            CaptureQueriesContext(connection) as queries,
            django_capture_on_commit_callbacks(execute=False),
        ):
            assert len(renewals_process(chunk, due_on, actor=STAFF)) == len(chunk)
        counted.append(len(queries))

    small, large = counted
    print(f"\nqueries for a bulk renewal of 10 and of 50 subscriptions: {small}, {large}")
    assert large == small


def _fail(family: tuple[str, int], error: Exception) -> None:
    raise AssertionError(f"{family} failed: {error}")


def test_a_subscription_without_a_price_fails_alone_and_the_rest_renews_in_bulk(
    db: None, django_capture_on_commit_callbacks: CaptureCallbacks
) -> None:
    # given three due subscriptions, one of them in a currency its plan has no price in
    set_clock(to=datetime(2026, 1, 15, 12, tzinfo=UTC))
    due_on = due_renewals_create(count=3, code="unpriced")
    set_clock(to=datetime(due_on.year, due_on.month, due_on.day, 1, tzinfo=UTC))
    unpriced = Subscription.objects.order_by("pk").last()
    assert unpriced is not None
    Subscription.objects.filter(pk=unpriced.pk).update(currency="EUR")
    families = due_families(due_on)
    failures: list[tuple[tuple[str, int], Exception]] = []

    # when the chunk is processed
    with django_capture_on_commit_callbacks(execute=True):
        renewed = renewals_process([key for _, key in families], due_on, actor=STAFF)
        counts = families_process(
            families, due_on, actor=STAFF, on_failure=lambda f, e: failures.append((f, e))
        )

    # then the bulk path renewed the two priced ones, and the third failed on its own
    assert len(renewed) == 2
    assert unpriced.pk not in renewed
    assert dict(+counts) == {"failed": 1}
    assert [(family, getattr(error, "code", None)) for family, error in failures] == [
        (("base", unpriced.pk), "currency_mismatch")
    ]
