"""invoices_issue: a batch of invoices, refused as a whole like invoice_create refuses one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from billing.models import DocumentSequence, Invoice, InvoiceLine
from billing.services.invoice_batches import InvoiceSpec, invoices_issue
from core.errors import ConflictError
from core.models import AuditLog
from customers.models import Customer
from tests.billing.conftest import STAFF, line

MakeInvoice = Callable[..., Invoice]

PERIOD: dict[str, Any] = {
    "subscription_id": 7,
    "period_start": date(2026, 1, 15),
    "period_end": date(2026, 2, 15),
}


def _spec(customer: Customer, *lines: Any) -> InvoiceSpec:
    return InvoiceSpec(
        customer=customer,
        currency="USD",
        billing_reason=Invoice.BillingReason.SUBSCRIPTION_CYCLE,
        lines=list(lines),
    )


def test_a_batch_issues_numbered_open_invoices_in_order(customer: Customer, clock: Any) -> None:
    issued = invoices_issue(
        invoices=[_spec(customer, line()), _spec(customer, line(unit_amount="5.00"))], actor=STAFF
    )

    assert [(i.status, i.total, i.sequence_number) for i in issued] == [
        (Invoice.Status.OPEN, 10, 1),
        (Invoice.Status.OPEN, 5, 2),
    ]
    assert [
        (line.invoice_id, line.amount) for line in InvoiceLine.objects.order_by("invoice_id")
    ] == [(issued[0].pk, 10), (issued[1].pk, 5)]


def test_a_batch_with_a_period_billed_before_is_refused_whole(
    customer: Customer, make_invoice: MakeInvoice
) -> None:
    make_invoice(customer, line(**PERIOD))
    before = (Invoice.objects.count(), InvoiceLine.objects.count(), AuditLog.objects.count())

    with pytest.raises(ConflictError) as refused:
        invoices_issue(
            invoices=[_spec(customer, line("Other")), _spec(customer, line(**PERIOD))],
            actor=STAFF,
        )

    assert (refused.value.code, refused.value.param) == ("period_already_billed", "lines")
    assert (Invoice.objects.count(), InvoiceLine.objects.count(), AuditLog.objects.count()) == (
        before
    )
    assert DocumentSequence.objects.get().next_number == 2
