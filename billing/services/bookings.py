"""Billing's events booked in the ledger (billing.ledger), each entry keyed by its source row.

Called inside the transaction of the service that changes the billing rows, so the books and
the documents always move together. Every idempotency key derives from the row being booked
("invoice:42:finalized", "payment:7", "refund:3:line:18"...), so booking twice books once.
Receivables and customer credit are kept per customer (party "customer:{id}"), which is what
the reconciliation compares with the invoices and balances.

- Invoice finalized: Dr receivable (positive lines) / Cr deferred revenue (net of lines with a
  service period, each given a recognition schedule), Cr revenue (net of lines without one),
  Cr tax payable. Credit lines: Dr deferred revenue for those with a service period (the
  unused time of a plan change, each given a negative schedule that takes the revenue of the
  days it credits back), Dr refunds and credits for those without (negative adjustments),
  Dr tax payable / Cr receivable.
- Customer balance: credit applied Dr customer credit / Cr receivable; a negative invoice's
  total and the credit a voided invoice gives back Dr receivable / Cr customer credit; manual
  adjustments against refunds and credits. (Credit notes book their own side.)
- Credit note and refund: each line reduces the invoice line's schedule proportionally
  (`recognition_reduce`: the earned share to contra-revenue, the unearned share out of
  deferred revenue, the tax out of tax payable) or, for lines without a schedule, goes to
  refunds and credits; against receivable (taken off what is due), customer credit (credited
  to the balance) or cash (refunded).
- Payment Dr cash / Cr receivable; write-off Dr bad debt / Cr receivable; disputes
  `post_dispute`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from billing.ledger.models import AccountCode as A
from billing.ledger.models import RecognitionReduction
from billing.ledger.postings import (
    invoice_credit_lines_entry,
    invoice_finalized_entry,
    payment_entry,
    post_credit_applied,
    post_credit_granted,
    post_credit_note,
    post_dispute,
    post_refund,
    post_write_off,
)
from billing.ledger.recognition import (
    ScheduleSpec,
    recognition_reduce,
    recognition_schedules_create,
)
from billing.ledger.selectors import recognition_schedule_for_source
from billing.ledger.services import EntrySpec, Posting, ledger_post, ledger_post_batch
from billing.models import (
    CreditNote,
    CustomerBalanceTransaction,
    Dispute,
    Invoice,
    InvoiceLine,
    Payment,
    Refund,
)
from billing.selectors import party

ZERO = Decimal("0")
INVOICE_LINE = "invoice_line"


def _net(total: Decimal, tax: Decimal) -> Decimal:
    """Revenue of a line: its total less its tax (an inclusive tax is inside the total)."""
    return total - tax


def _schedulable_credit(line: InvoiceLine) -> bool:
    """A credit line recognized over its service period (unused time), not at once."""
    return (
        line.total < 0
        and line.period_start is not None
        and line.period_end is not None
        and line.period_end > line.period_start
        and _net(line.total, line.tax_amount) < 0
    )


def _transfer(
    *,
    key: str,
    source_type: str,
    source_id: int,
    description: str,
    effective_date: date,
    currency: str,
    debits: Iterable[tuple[str, Decimal, str]],
    credits: Iterable[tuple[str, Decimal, str]],
) -> None:
    """A plain entry of (account, amount, party) debits and credits, zero amounts left out."""
    lines = [Posting.debit(code, currency, amount, p) for code, amount, p in debits if amount]
    lines += [Posting.credit(code, currency, amount, p) for code, amount, p in credits if amount]
    if lines:
        ledger_post(
            idempotency_key=key,
            effective_date=effective_date,
            source_type=source_type,
            source_id=source_id,
            description=description,
            lines=lines,
        )


# --- invoices -----------------------------------------------------------------------------------


def book_invoice_finalized(*, invoice: Invoice) -> None:
    lines = list(InvoiceLine.objects.filter(invoice=invoice).order_by("position", "id"))
    book_invoices_finalized(invoices=[(invoice, lines)])


def book_invoices_finalized(*, invoices: Sequence[tuple[Invoice, Sequence[InvoiceLine]]]) -> None:
    """Book finalized invoices (each with its lines in position order) in one ledger batch:
    the receivable, deferred revenue and tax of the charges, a recognition schedule per line
    with a service period, the credit lines against receivable."""
    entries: list[EntrySpec] = []
    schedules: list[ScheduleSpec] = []
    for invoice, lines in invoices:
        who = party(invoice.customer_id)
        assert invoice.issued_on is not None  # noqa: S101 - finalized invoices have one
        charges = [line for line in lines if line.total > 0]
        scheduled = [line for line in charges if line.period_start is not None]
        receivable = sum((line.total for line in charges), ZERO)
        if receivable:
            entries.append(
                invoice_finalized_entry(
                    key=f"invoice:{invoice.pk}:finalized",
                    currency=invoice.currency,
                    effective_date=invoice.issued_on,
                    receivable=receivable,
                    deferred=sum((_net(line.total, line.tax_amount) for line in scheduled), ZERO),
                    revenue=sum(
                        (
                            _net(line.total, line.tax_amount)
                            for line in charges
                            if line not in scheduled
                        ),
                        ZERO,
                    ),
                    tax=sum((line.tax_amount for line in charges), ZERO),
                    source_id=invoice.pk,
                    party=who,
                )
            )
        credits = [line for line in lines if line.total < 0]
        scheduled_credits = [line for line in credits if _schedulable_credit(line)]
        for line in scheduled + scheduled_credits:
            net = _net(line.total, line.tax_amount)
            if net and line.period_start is not None and line.period_end is not None:
                schedules.append(
                    ScheduleSpec(
                        source_id=line.pk,
                        source_type=INVOICE_LINE,
                        currency=invoice.currency,
                        amount=net,
                        service_start=line.period_start,
                        service_end=line.period_end,
                    )
                )
        if credits:
            entries.append(
                invoice_credit_lines_entry(
                    key=f"invoice:{invoice.pk}:credit_lines",
                    currency=invoice.currency,
                    effective_date=invoice.issued_on,
                    deferred=-sum(
                        (_net(line.total, line.tax_amount) for line in scheduled_credits), ZERO
                    ),
                    contra_revenue=-sum(
                        (
                            _net(line.total, line.tax_amount)
                            for line in credits
                            if line not in scheduled_credits
                        ),
                        ZERO,
                    ),
                    tax=-sum((line.tax_amount for line in credits), ZERO),
                    source_id=invoice.pk,
                    party=who,
                )
            )
    ledger_post_batch(entries=entries)
    recognition_schedules_create(specs=schedules)


def book_invoice_voided(*, invoice: Invoice, effective_date: date) -> None:
    """Take a voided invoice's lines back out of the books (against its receivable): each line
    with a schedule (a credit line's negative one too) is reduced to nothing, the others are
    reversed from revenue (charges) or refunds and credits (credit lines)."""
    lines = list(InvoiceLine.objects.filter(invoice=invoice).order_by("position", "id"))
    who = party(invoice.customer_id)
    unscheduled_net = unscheduled_tax = credit_net = credit_tax = ZERO
    reductions = []
    for line in lines:
        if not line.total:
            continue
        net = _net(line.total, line.tax_amount)
        schedule = recognition_schedule_for_source(source_id=line.pk, source_type=INVOICE_LINE)
        # The schedule's effective amount has the line's sign unless a reduction used it up.
        if schedule is not None and schedule.effective_amount * line.total > 0:
            reductions.append((schedule, line))
        elif line.total > 0:
            unscheduled_net += net
            unscheduled_tax += line.tax_amount
        else:
            credit_net -= net
            credit_tax -= line.tax_amount
    for schedule, line in sorted(reductions, key=lambda pair: pair[0].pk):
        recognition_reduce(
            schedule=schedule,
            amount=schedule.effective_amount,
            tax=line.tax_amount,
            effective_date=effective_date,
            idempotency_key=f"invoice:{invoice.pk}:void:line:{line.pk}",
            counterparty=A.ACCOUNTS_RECEIVABLE,
            kind=RecognitionReduction.Kind.CREDIT_NOTE,
            party=who,
            source_id=invoice.pk,
        )
    _transfer(
        key=f"invoice:{invoice.pk}:void:unscheduled",
        source_type="invoice",
        source_id=invoice.pk,
        description="Invoice voided",
        effective_date=effective_date,
        currency=invoice.currency,
        debits=[
            (A.SUBSCRIPTION_REVENUE, unscheduled_net, ""),
            (A.TAX_PAYABLE, unscheduled_tax, ""),
        ],
        credits=[(A.ACCOUNTS_RECEIVABLE, unscheduled_net + unscheduled_tax, who)],
    )
    _transfer(
        key=f"invoice:{invoice.pk}:void:credit_lines",
        source_type="invoice",
        source_id=invoice.pk,
        description="Invoice voided: its credit lines",
        effective_date=effective_date,
        currency=invoice.currency,
        debits=[(A.ACCOUNTS_RECEIVABLE, credit_net + credit_tax, who)],
        credits=[(A.REFUNDS_AND_CREDITS, credit_net, ""), (A.TAX_PAYABLE, credit_tax, "")],
    )


def book_write_off(*, invoice: Invoice, effective_date: date) -> None:
    if invoice.amount_due > 0:
        post_write_off(
            key=f"invoice:{invoice.pk}:write_off",
            currency=invoice.currency,
            effective_date=effective_date,
            amount=invoice.amount_due,
            source_id=invoice.pk,
            party=party(invoice.customer_id),
        )


# --- customer balance ---------------------------------------------------------------------------


def book_balance_transaction(*, transaction: CustomerBalanceTransaction) -> None:
    kind, amount = transaction.kind, transaction.amount
    who = party(transaction.customer_id)
    day = transaction.created_at.date()
    key = f"balance:{transaction.pk}"
    Kind = CustomerBalanceTransaction.Kind
    if kind == Kind.CREDIT_NOTE:
        return  # the credit note books both sides itself
    if kind == Kind.APPLIED_TO_INVOICE:
        post_credit_applied(
            key=key,
            currency=transaction.currency,
            effective_date=day,
            amount=-amount,
            source_id=transaction.pk,
            party=who,
        )
    elif kind in (Kind.PRORATION_CREDIT, Kind.INVOICE_VOIDED):
        # The invoice's receivable (negative, or given back) becomes credit on the balance.
        _transfer(
            key=key,
            source_type="credit_application",
            source_id=transaction.pk,
            description=Kind(kind).label,
            effective_date=day,
            currency=transaction.currency,
            debits=[(A.ACCOUNTS_RECEIVABLE, amount, who)],
            credits=[(A.CUSTOMER_CREDIT, amount, who)],
        )
    elif amount > 0:
        post_credit_granted(
            key=key,
            currency=transaction.currency,
            effective_date=day,
            amount=amount,
            source_id=transaction.pk,
            party=who,
        )
    else:
        _transfer(
            key=key,
            source_type="credit_grant",
            source_id=transaction.pk,
            description="Credit taken back from the customer's balance",
            effective_date=day,
            currency=transaction.currency,
            debits=[(A.CUSTOMER_CREDIT, -amount, who)],
            credits=[(A.REFUNDS_AND_CREDITS, -amount, "")],
        )


# --- credit notes and refunds -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LineReduction:
    """Part of an invoice line given back: its revenue (net) and tax."""

    invoice_line_id: int
    net: Decimal
    tax: Decimal


def _book_reductions(
    *,
    reductions: list[LineReduction],
    key: str,
    currency: str,
    customer_id: int,
    counterparty: str,
    kind: str,
    effective_date: date,
    source_id: int,
) -> None:
    who = "" if counterparty == A.CASH else party(customer_id)
    scheduled = []
    rest_net = rest_tax = ZERO
    for reduction in reductions:
        schedule = recognition_schedule_for_source(
            source_id=reduction.invoice_line_id, source_type=INVOICE_LINE
        )
        if schedule is not None and 0 < reduction.net <= schedule.effective_amount:
            scheduled.append((schedule, reduction))
        else:
            rest_net += reduction.net
            rest_tax += reduction.tax
    # Schedules are locked in id order, like the daily recognition run does.
    for schedule, reduction in sorted(scheduled, key=lambda pair: pair[0].pk):
        recognition_reduce(
            schedule=schedule,
            amount=reduction.net,
            tax=reduction.tax,
            effective_date=effective_date,
            idempotency_key=f"{key}:line:{reduction.invoice_line_id}",
            counterparty=counterparty,
            kind=kind,
            party=who,
            source_id=source_id,
        )
    if rest_net + rest_tax > 0:
        post_credit_note(
            key=f"{key}:unscheduled",
            currency=currency,
            effective_date=effective_date,
            counterparty=counterparty,
            contra_revenue=rest_net,
            tax=rest_tax,
            source_id=source_id,
            party=party(customer_id),
        )


def book_credit_note(*, credit_note: CreditNote, counterparty: str) -> None:
    """A credit note credited to the balance (customer credit) or off the amount due
    (receivable). A refunded credit note is booked by its refunds as they succeed."""
    _book_reductions(
        reductions=[
            LineReduction(line.invoice_line_id, _net(line.total, line.tax_amount), line.tax_amount)
            for line in credit_note.lines.all()
            if line.invoice_line_id is not None
        ],
        key=f"credit_note:{credit_note.pk}",
        currency=credit_note.currency,
        customer_id=credit_note.customer_id,
        counterparty=counterparty,
        kind=RecognitionReduction.Kind.CREDIT_NOTE,
        effective_date=credit_note.issued_on,
        source_id=credit_note.pk,
    )


def book_refund(*, refund: Refund, effective_date: date, to_balance: bool = False) -> None:
    """A refund paid out (cash), or, for a credit note whose refund failed, the same value
    credited to the customer's balance instead (`to_balance`)."""
    lines = list(refund.lines.all())
    key = f"refund:{refund.pk}" + (":to_balance" if to_balance else "")
    if not lines:
        # A payment not tied to invoice lines: it was customer credit.
        post_refund(
            key=key,
            currency=refund.currency,
            effective_date=effective_date,
            amount=refund.amount,
            source_id=refund.pk,
            party=party(refund.customer_id),
        )
        return
    _book_reductions(
        reductions=[
            LineReduction(line.invoice_line_id, _net(line.total, line.tax_amount), line.tax_amount)
            for line in lines
        ],
        key=key,
        currency=refund.currency,
        customer_id=refund.customer_id,
        counterparty=A.CUSTOMER_CREDIT if to_balance else A.CASH,
        kind=(
            RecognitionReduction.Kind.CREDIT_NOTE
            if to_balance
            else RecognitionReduction.Kind.REFUND
        ),
        effective_date=effective_date,
        source_id=refund.pk,
    )


# --- payments and disputes ----------------------------------------------------------------------


def book_payment(*, payment: Payment) -> None:
    book_payments(payments=[payment])


def book_payments(*, payments: Sequence[Payment]) -> None:
    """Dr cash / Cr receivable for each payment, in one ledger batch."""
    ledger_post_batch(
        entries=[
            payment_entry(
                key=f"payment:{payment.pk}",
                currency=payment.currency,
                effective_date=payment.received_on,
                amount=payment.amount,
                source_id=payment.pk,
                party=party(payment.customer_id),
            )
            for payment in payments
        ]
    )


def book_dispute(*, dispute: Dispute, stage: str, effective_date: date) -> None:
    post_dispute(
        key=f"dispute:{dispute.pk}:{stage}",
        currency=dispute.currency,
        effective_date=effective_date,
        amount=dispute.amount,
        stage=stage,
        source_id=dispute.pk,
    )
