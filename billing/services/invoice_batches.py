"""Invoices issued in batches: the billing run's renewals of a chunk, set-based.

`invoices_issue` has the outcome of `invoice_create` (finalized) called for each invoice in
turn: the same invoices and lines, gapless numbers, ledger entries and recognition schedules,
audit entries and webhook events, and the autocharge of the open ones after commit. It takes a
constant number of statements for the whole batch instead of some twenty per invoice.

The rows shared by every invoice are taken last and held briefly, in the order the one-by-one
path takes them (the numbering sequence, then the customers' balances, then the ledger's
accounts), so two workers issuing batches at once wait on each other only for the final
inserts, and never deadlock with a single invoice being finalized. An invoice whose
finalization moves a credit balance (credit to apply, or a negative total) is rare in a run and
goes through `invoice_create` itself, in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, connection, models, transaction

from billing.models import CustomerBalance, DocumentSequence, Invoice, InvoiceLine
from billing.services.bookings import book_invoices_finalized
from billing.services.invoices import (
    LineSpec,
    Lookups,
    _check_references,
    _compute,
    _save_invoice,
    _set_amount_due,
    _take_numbers,
    _violated_constraint,
    document_number,
    schedule_autocharge,
)
from billing.webhook_payloads import invoice_payload
from core import clock
from core.actors import Actor
from core.bulk import array_literal, insert_rows
from core.errors import ConflictError
from core.queries import any_of
from core.services import AuditSpec, audit_record_bulk, audit_snapshot
from core.webhooks.events import EventType
from core.webhooks.services import EventSpec, event_emit_bulk
from customers.models import Customer

ZERO = Decimal("0")


@dataclass(frozen=True)
class InvoiceSpec:
    """One invoice of a batch: what `invoice_create` is given."""

    customer: Customer
    currency: str
    billing_reason: str
    lines: Sequence[LineSpec]


def invoices_issue(*, invoices: Sequence[InvoiceSpec], actor: Actor) -> list[Invoice]:
    """Create and finalize `invoices` (in the caller's transaction; all or nothing), in order.

    Refused like `invoice_create`: invalid lines (ValidationError) and a subscription period
    that is already billed (`period_already_billed`), for the whole batch.
    """
    if not invoices:
        return []
    lookups = Lookups()
    _check_references([line for spec in invoices for line in spec.lines], param="lines")
    lookups.references_checked = True
    computed = [
        _compute(
            customer=spec.customer,
            currency=spec.currency,
            billing_reason=spec.billing_reason,
            specs=[(line, True) for line in spec.lines],
            memo="",
            param="lines",
            lookups=lookups,
        )
        for spec in invoices
    ]
    with transaction.atomic():
        credited = _customers_with_credit([invoice for invoice, _ in computed])
        issued: dict[int, Invoice] = {}
        batch: list[tuple[int, Invoice, list[InvoiceLine]]] = []
        for index, (invoice, lines) in enumerate(computed):
            key = (invoice.customer_id, invoice.currency)
            if invoice.total < 0 or key in credited:
                issued[index] = _save_invoice(invoice, lines, actor=actor, finalize=True)
            else:
                batch.append((index, invoice, lines))
        if batch:
            _issue_batch([(invoice, lines) for _, invoice, lines in batch], actor=actor)
            issued.update({index: invoice for index, invoice, _ in batch})
            schedule_autocharge(
                [
                    invoice.pk
                    for _, invoice, _ in batch
                    if invoice.status == Invoice.Status.OPEN and invoice.customer.autocharge
                ]
            )
    return [issued[index] for index in range(len(computed))]


def _customers_with_credit(invoices: list[Invoice]) -> set[tuple[int, str]]:
    """(customer, currency) pairs with a credit balance now: their invoices take it."""
    return set(
        CustomerBalance.objects.filter(
            any_of("customer_id", {invoice.customer_id for invoice in invoices}), amount__gt=0
        ).values_list("customer_id", "currency")
    )


def _issue_batch(pairs: list[tuple[Invoice, list[InvoiceLine]]], *, actor: Actor) -> None:
    now, today = clock.now(), clock.today()
    # Ids first, so the lines (their foreign key is checked at commit) go in before the
    # invoices, which need the numbering sequence's lock.
    for (invoice, lines), pk in zip(pairs, _new_ids(len(pairs)), strict=True):
        invoice.pk = pk
        for line in lines:
            line.invoice = invoice
    all_lines = [line for _, lines in pairs for line in lines]
    try:
        with transaction.atomic():
            insert_rows(all_lines)
    except IntegrityError as exc:
        if _violated_constraint(exc) in {
            "invoice_line_period_billed_once",
            "invoice_line_usage_billed_once",
        }:
            raise ConflictError(
                "A service period of a subscription in this batch is already billed.",
                code="period_already_billed",
                param="lines",
            ) from exc
        raise
    audits = [
        AuditSpec(
            "invoice.create",
            invoice,
            after={**audit_snapshot(invoice), "lines": [audit_snapshot(line) for line in lines]},
        )
        for invoice, lines in pairs
    ]
    # Finalizing re-reads the draft: its amounts are audited as stored (with the column's scale).
    drafts = [audit_snapshot(_as_stored(invoice)) for invoice, _ in pairs]

    sequence, first = _take_numbers(
        DocumentSequence.Kind.INVOICE,
        year=today.year,
        prefix=f"INV-{today.year}-",
        count=len(pairs),
    )
    _lock_balances([invoice for invoice, _ in pairs if invoice.total > 0], now=now)
    events = []
    for number, (invoice, lines), draft in zip(
        range(first, first + len(pairs)), pairs, drafts, strict=True
    ):
        invoice.sequence, invoice.sequence_number = sequence, number
        invoice.number = document_number(sequence, number)
        invoice.issued_on = today
        invoice.due_on = today + timedelta(days=settings.INVOICE_DUE_DAYS)
        invoice.finalized_at = now
        _set_amount_due(invoice, now=now)
        audits.append(
            AuditSpec("invoice.finalize", invoice, before=draft, after=audit_snapshot(invoice))
        )
        payload = invoice_payload(invoice, lines)
        events.append(
            EventSpec(
                type=EventType.INVOICE_FINALIZED, payload=payload, customer_id=invoice.customer_id
            )
        )
        if invoice.status == Invoice.Status.PAID:  # credit or nothing due: paid at once
            events.append(
                EventSpec(
                    type=EventType.INVOICE_PAID, payload=payload, customer_id=invoice.customer_id
                )
            )
    insert_rows([invoice for invoice, _ in pairs])
    book_invoices_finalized(invoices=pairs)
    audit_record_bulk(actor=actor, records=audits)
    event_emit_bulk(events=events)


def _as_stored(invoice: Invoice) -> Invoice:
    for field in Invoice._meta.concrete_fields:
        if isinstance(field, models.DecimalField):
            value = getattr(invoice, field.attname)
            if value is not None:
                setattr(
                    invoice, field.attname, value.quantize(Decimal(1).scaleb(-field.decimal_places))
                )
    return invoice


def _new_ids(count: int) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [Invoice._meta.db_table, count],
        )
        return [pk for (pk,) in cursor.fetchall()]


def _lock_balances(invoices: list[Invoice], *, now: datetime) -> None:
    """Lock the balances these invoices would take credit from (created at zero the first
    time, as finalizing one does), in customer order; any credit arrived since the batch was
    split is a conflict (the run retries the family on its own)."""
    keys = sorted({(invoice.customer_id, invoice.currency) for invoice in invoices})
    if not keys:
        return
    customers = [customer_id for customer_id, _ in keys]
    currencies = [currency for _, currency in keys]
    table = CustomerBalance._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (customer_id, currency, amount, updated_at) "  # noqa: S608 - our table
            "SELECT customer_id, currency, 0, %s "
            "FROM unnest(%s::bigint[], %s::varchar[]) AS k(customer_id, currency) "
            "ORDER BY customer_id, currency "
            "ON CONFLICT (customer_id, currency) DO NOTHING",
            [now, array_literal(customers), array_literal(currencies)],
        )
        cursor.execute(
            f"SELECT customer_id, currency, amount FROM {table} "  # noqa: S608 - our table
            "WHERE customer_id = ANY(%s::bigint[]) ORDER BY customer_id, currency FOR UPDATE",
            [array_literal(sorted(set(customers)))],
        )
        wanted = set(keys)
        changed = any(
            amount > 0
            for customer_id, currency, amount in cursor.fetchall()
            if (customer_id, currency) in wanted
        )
    if changed:
        raise ConflictError(
            "A customer's credit balance changed while the batch was issued.",
            code="balance_changed",
        )
