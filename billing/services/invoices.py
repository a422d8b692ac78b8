"""Writes of invoices, credit notes and the customer credit balance.

The money rules (DESIGN.md section 3 and the issue-3 contract), in one place:

- a line's amount is quantity x unit amount (or a given unrounded amount), x days / period
  days when prorated, rounded half up to the currency's minor unit ONCE; credits are negative;
- a percent coupon takes round(amount x percent / 100) off each line that carries it (credits
  too, so unused days of a discounted period are credited net of the discount); a fixed coupon
  takes its amount in the invoice currency off once per invoice, line by line in order, each
  line capped at its amount, never off a credit line;
- tax comes from the customer's place: exclusive round(taxable x pct / 100) on top, inclusive
  round(taxable x pct / (100 + pct)) inside;
- invoice totals are sums of the rounded line values, so an invoice adds up to the cent.

Numbers are gapless: the DocumentSequence row is locked while a number is taken, in the
transaction that uses it, so a rollback gives the number back. Rows that change are locked in
one order everywhere (invoice, then sequence, then balance), so two writers never deadlock.
Functions join the caller's transaction (`transaction.atomic()`, never durable): the lifecycle
services call them from inside their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import cached_property
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from billing.ledger.models import AccountCode
from billing.models import (
    CreditNote,
    CreditNoteLine,
    CustomerBalance,
    CustomerBalanceTransaction,
    DocumentSequence,
    Invoice,
    InvoiceLine,
    PaymentAttempt,
)
from billing.selectors import (
    Creditable,
    customer_balance,
    invoice_creditable_total,
    invoice_line_creditable,
)
from billing.services.bookings import (
    book_balance_transaction,
    book_credit_note,
    book_invoice_finalized,
    book_invoice_voided,
    book_write_off,
)
from billing.webhook_payloads import credit_note_payload, invoice_payload
from catalog.models import Coupon, CouponAmount, Meter, Plan, Price, TaxRate
from catalog.selectors import tax_rate_for
from core import clock
from core.actors import Actor
from core.errors import ConflictError, NotFoundError, ValidationError
from core.money import DECIMAL_PLACES, is_rounded, normalize_currency, round_money
from core.services import audit_record, audit_snapshot
from core.webhooks.events import EventType
from core.webhooks.services import EventSpec, event_emit_bulk
from customers.models import Customer

ZERO = Decimal("0")
HUNDRED = Decimal("100")
DESCRIPTION_MAX_LENGTH = 300
MEMO_MAX_LENGTH = 2000
BALANCE_MEMO_MAX_LENGTH = 300


@dataclass(frozen=True)
class LineSpec:
    """One line to invoice, as the caller (the lifecycle) describes it; billing does the math."""

    kind: str  # InvoiceLine.Kind value
    description: str
    unit_amount: Decimal  # per unit per FULL period (recurring) or per usage unit; >= 0
    quantity: Decimal = Decimal(1)
    period_start: date | None = None
    period_end: date | None = None  # exclusive
    proration: tuple[int, int] | None = None  # (days, period_days): amount x days / period_days
    amount: Decimal | None = None  # an already computed UNROUNDED amount; replaces qty x unit
    subscription_id: int | None = None
    plan_id: int | None = None
    price_id: int | None = None
    meter_id: int | None = None
    coupon_id: int | None = None  # discount to apply to this line
    # kind == proration_credit: billing negates the computed amount (callers pass positive inputs)


@dataclass(frozen=True)
class OneOffItem:
    """A line of a one-off invoice: quantity x unit amount, taxed at the customer's rate or not."""

    description: str
    unit_amount: Decimal
    quantity: Decimal = Decimal(1)
    tax: bool = True


@dataclass
class InvoicePreview:
    """An invoice computed exactly as `invoice_create` would, saved nowhere.

    `invoice` and `lines` are unsaved model instances; `credit_applied` and `amount_due` are
    what finalizing it now would give, from the customer's current balance.
    """

    invoice: Invoice
    lines: list[InvoiceLine]
    starting_balance: Decimal
    credit_applied: Decimal
    amount_due: Decimal


# --- invoices -----------------------------------------------------------------------------------


def invoice_create(
    *,
    customer: Customer,
    currency: str,
    billing_reason: str,
    lines: Sequence[LineSpec],
    actor: Actor,
    finalize: bool = True,
    memo: str = "",
) -> Invoice:
    """Invoice `lines` to `customer`; finalized (numbered, balance applied) unless told not.

    One transaction, joining the caller's. A recurring or usage line for a subscription period
    that is already billed is refused (`period_already_billed`), by the database itself.
    """
    invoice, invoice_lines = _compute(
        customer=customer,
        currency=currency,
        billing_reason=billing_reason,
        specs=[(spec, True) for spec in lines],
        memo=memo,
        param="lines",
    )
    return _save_invoice(invoice, invoice_lines, actor=actor, finalize=finalize)


def invoice_preview(
    *, customer: Customer, currency: str, billing_reason: str, lines: Sequence[LineSpec]
) -> InvoicePreview:
    """The invoice `invoice_create` would produce now, with nothing written anywhere."""
    invoice, invoice_lines = _compute(
        customer=customer,
        currency=currency,
        billing_reason=billing_reason,
        specs=[(spec, True) for spec in lines],
        memo="",
        param="lines",
    )
    starting_balance = customer_balance(customer=customer, currency=invoice.currency)
    credit = min(starting_balance, invoice.total) if invoice.total > 0 else ZERO
    invoice.credit_applied = credit
    invoice.amount_due = max(invoice.total, ZERO) - credit
    return InvoicePreview(
        invoice=invoice,
        lines=invoice_lines,
        starting_balance=starting_balance,
        credit_applied=credit,
        amount_due=invoice.amount_due,
    )


def invoice_create_one_off(
    *,
    customer: Customer,
    currency: str,
    items: Sequence[OneOffItem],
    actor: Actor,
    finalize: bool = True,
    memo: str = "",
) -> Invoice:
    """A one-off invoice (billing reason `manual`): each item is quantity x unit amount."""
    currency = _invoice_currency(customer, currency)
    if not items:
        raise ValidationError("Give at least one item.", code="no_items", param="items")
    specs: list[tuple[LineSpec, bool]] = []
    for index, item in enumerate(items):
        param = f"items[{index}]"
        unit_amount = _decimal(item.unit_amount, param=f"{param}.unit_amount")
        if unit_amount < 0 or not is_rounded(unit_amount, currency):
            raise ValidationError(
                f"A unit amount is 0 or more, with at most the decimals of {currency}.",
                code="invalid_amount",
                param=f"{param}.unit_amount",
            )
        quantity = _decimal(item.quantity, param=f"{param}.quantity", code="invalid_quantity")
        if quantity <= 0:
            raise ValidationError(
                "A quantity is more than 0.", code="invalid_quantity", param=f"{param}.quantity"
            )
        spec = LineSpec(
            kind=InvoiceLine.Kind.ONE_OFF,
            description=item.description,
            unit_amount=unit_amount,
            quantity=quantity,
        )
        specs.append((spec, bool(item.tax)))
    invoice, invoice_lines = _compute(
        customer=customer,
        currency=currency,
        billing_reason=Invoice.BillingReason.MANUAL,
        specs=specs,
        memo=memo,
        param="items",
    )
    return _save_invoice(invoice, invoice_lines, actor=actor, finalize=finalize)


def invoice_finalize(*, invoice: Invoice, actor: Actor) -> Invoice:
    """Issue a draft: its gapless number, issue and due dates, the credit balance applied.

    A negative total (unused time credited back) goes to the customer's balance and nothing is
    due. When nothing is due the invoice is paid at once.
    """
    with transaction.atomic():
        locked = _lock_invoice(invoice)
        if locked.status != Invoice.Status.DRAFT:
            raise ConflictError(
                f"Invoice {locked} is {locked.status}; only a draft can be finalized.",
                code="invoice_not_draft",
            )
        before = audit_snapshot(locked)
        now, today = clock.now(), clock.today()
        sequence, sequence_number, number = _take_number(
            DocumentSequence.Kind.INVOICE, year=today.year, prefix=f"INV-{today.year}-"
        )
        locked.sequence, locked.sequence_number, locked.number = sequence, sequence_number, number
        locked.issued_on = today
        locked.due_on = today + timedelta(days=settings.INVOICE_DUE_DAYS)
        locked.finalized_at = now
        if locked.total < 0:
            customer_balance_adjust(
                customer=locked.customer,
                currency=locked.currency,
                amount=-locked.total,
                kind=CustomerBalanceTransaction.Kind.PRORATION_CREDIT,
                actor=actor,
                memo=f"Credit from invoice {number}",
                invoice=locked,
            )
        elif locked.total > 0:
            owed = locked.total - locked.credited_total - locked.amount_paid
            balance = _lock_balance(locked.customer, locked.currency)
            use = min(balance.amount, owed)
            if use > 0:
                customer_balance_adjust(
                    customer=locked.customer,
                    currency=locked.currency,
                    amount=-use,
                    kind=CustomerBalanceTransaction.Kind.APPLIED_TO_INVOICE,
                    actor=actor,
                    memo=f"Applied to invoice {number}",
                    invoice=locked,
                )
                locked.credit_applied = use
        _set_amount_due(locked, now=now)
        locked.save()
        book_invoice_finalized(invoice=locked)
        audit_record(
            actor=actor,
            action="invoice.finalize",
            instance=locked,
            before=before,
            after=audit_snapshot(locked),
        )
        # Credit covering it all pays it at once: both events, one snapshot.
        emitted = [EventType.INVOICE_FINALIZED]
        if locked.status == Invoice.Status.PAID:
            emitted.append(EventType.INVOICE_PAID)
        invoice_emit(locked, *emitted)
        if locked.status == Invoice.Status.OPEN and locked.customer.autocharge:
            schedule_autocharge([locked.pk])
    return locked


def _invoice_event(invoice: Invoice, type_: str) -> EventSpec:
    return EventSpec(type=type_, payload=invoice_payload(invoice), customer_id=invoice.customer_id)


def invoice_emit(invoice: Invoice, *types: str) -> None:
    """Emit events about an invoice in the caller's transaction, with one snapshot of it."""
    payload = invoice_payload(invoice)
    event_emit_bulk(
        events=[
            EventSpec(type=type_, payload=payload, customer_id=invoice.customer_id)
            for type_ in types
        ]
    )


def schedule_autocharge(invoice_ids: Sequence[int]) -> None:
    """Charge the invoices once they are committed: the gateway call never runs inside the
    transaction that created them (a rollback cannot take a charge back).

    The one place autocharge is triggered. `robust`: a failure to charge is logged and never
    undoes or interrupts the caller's work (the invoices stay open for dunning).
    """
    from billing.services.payments import invoices_autocharge_ids

    ids = list(invoice_ids)
    if ids:
        transaction.on_commit(lambda: invoices_autocharge_ids(invoice_ids=ids), robust=True)


def invoice_void(*, invoice: Invoice, actor: Actor) -> Invoice:
    """Cancel an open invoice: nothing is due any more and the credit it used goes back.

    A void invoice keeps its number (the sequence stays gapless). Invoices with credit notes
    are not voided: their credit notes already settled part of them.
    """
    with transaction.atomic():
        locked = _lock_invoice(invoice)
        if locked.status != Invoice.Status.OPEN:
            raise ConflictError(
                f"Invoice {locked} is {locked.status}; only an open invoice can be voided.",
                code="invoice_not_open",
            )
        if locked.credit_notes.filter(status=CreditNote.Status.ISSUED).exists():
            raise ConflictError(
                f"Invoice {locked} has credit notes; credit the rest instead of voiding it.",
                code="invoice_has_credit_notes",
            )
        if locked.amount_paid > 0:
            raise ConflictError(
                f"Invoice {locked} is partly paid; refund or credit it instead of voiding it.",
                code="invoice_partly_paid",
            )
        _refuse_while_charging(locked)
        before = audit_snapshot(locked)
        if locked.credit_applied > 0:
            customer_balance_adjust(
                customer=locked.customer,
                currency=locked.currency,
                amount=locked.credit_applied,
                kind=CustomerBalanceTransaction.Kind.INVOICE_VOIDED,
                actor=actor,
                memo=f"Returned from voided invoice {locked.number}",
                invoice=locked,
            )
        locked.status = Invoice.Status.VOID
        locked.amount_due = ZERO
        locked.voided_at = clock.now()
        locked.save()
        book_invoice_voided(invoice=locked, effective_date=clock.today())
        audit_record(
            actor=actor,
            action="invoice.void",
            instance=locked,
            before=before,
            after=audit_snapshot(locked),
        )
        invoice_emit(locked, EventType.INVOICE_VOIDED)
    return locked


def invoice_mark_uncollectible(*, invoice: Invoice, actor: Actor) -> Invoice:
    """Write off an open invoice as bad debt; what is due stays on record."""
    with transaction.atomic():
        locked = _lock_invoice(invoice)
        if locked.status != Invoice.Status.OPEN:
            raise ConflictError(
                f"Invoice {locked} is {locked.status}; only an open invoice can be marked "
                "uncollectible.",
                code="invoice_not_open",
            )
        _refuse_while_charging(locked)
        before = audit_snapshot(locked)
        locked.status = Invoice.Status.UNCOLLECTIBLE
        locked.marked_uncollectible_at = clock.now()
        locked.save()
        book_write_off(invoice=locked, effective_date=clock.today())
        audit_record(
            actor=actor,
            action="invoice.mark_uncollectible",
            instance=locked,
            before=before,
            after=audit_snapshot(locked),
        )
    return locked


def invoice_delete_draft(*, invoice: Invoice, actor: Actor) -> None:
    """Delete a draft and its lines. A finalized invoice is never deleted (void it instead)."""
    with transaction.atomic():
        locked = _lock_invoice(invoice)
        if locked.status != Invoice.Status.DRAFT:
            raise ConflictError(
                f"Invoice {locked} is {locked.status}; only a draft can be deleted.",
                code="invoice_not_draft",
            )
        audit_record(
            actor=actor,
            action="invoice.delete",
            instance=locked,
            before={
                **audit_snapshot(locked),
                "lines": [audit_snapshot(line) for line in locked.lines.all()],
            },
        )
        locked.delete()


# --- credit notes -------------------------------------------------------------------------------


def credit_note_create(
    *,
    invoice: Invoice,
    actor: Actor,
    outcome: str,
    reason: str = CreditNote.Reason.OTHER,
    memo: str = "",
    lines: Sequence[tuple[InvoiceLine, Decimal]] | None = None,
    amount: Decimal | None = None,
) -> CreditNote:
    """Credit an open or paid invoice: whole (neither `lines` nor `amount`), chosen lines
    with pre-tax amounts, or a lump `amount` (tax included) spread over the lines.

    The value goes to the customer's balance (`credit_balance`), off what the invoice still
    asks (`reduce_amount_due`, open invoices only, up to the amount due), or back to the
    customer (`refund`: the invoice's payments are refunded for the credit note's total, newest
    first, through their gateway once this transaction commits; `refund_exceeds_payments` when
    they do not have that much left). Each credit-note line is taxed at its invoice line's rate
    and inclusivity; nothing is ever credited beyond what a line, or the invoice, has left to
    credit. Booked in the ledger at once (a refund as it succeeds).
    """
    outcome = _choice(outcome, CreditNote.Outcome.values, param="outcome", code="invalid_outcome")
    reason = _choice(reason, CreditNote.Reason.values, param="reason", code="invalid_reason")
    memo = _clean_memo(memo, max_length=MEMO_MAX_LENGTH)
    if lines is not None and amount is not None:
        raise ValidationError(
            "Credit either chosen lines or an amount, not both.",
            code="lines_and_amount",
            param="amount",
        )
    with transaction.atomic():
        locked = _lock_invoice(invoice)
        if locked.status not in (Invoice.Status.OPEN, Invoice.Status.PAID):
            raise ConflictError(
                f"Invoice {locked} is {locked.status}; only open or paid invoices are credited.",
                code="invoice_not_creditable",
            )
        if outcome == CreditNote.Outcome.REDUCE_AMOUNT_DUE and locked.status != Invoice.Status.OPEN:
            raise ConflictError(
                f"Invoice {locked} is {locked.status}: there is no amount due to reduce.",
                code="invoice_not_open",
                param="outcome",
            )
        creditable = invoice_line_creditable(invoice=locked)
        remaining = invoice_creditable_total(invoice=locked)
        invoice_lines = {line.pk: line for line in locked.lines.all()}
        if lines is not None:
            credit_lines = _credit_chosen_lines(locked, lines, creditable, invoice_lines)
            param = "lines"
        else:
            param = "amount"
            lump = remaining if amount is None else _credit_amount(amount, locked.currency)
            if lump <= 0:
                raise ValidationError(
                    f"Invoice {locked} has nothing left to credit.",
                    code="nothing_to_credit",
                    param=param,
                )
            if lump > remaining:
                raise ValidationError(
                    f"At most {remaining} {locked.currency} can still be credited on "
                    f"invoice {locked}.",
                    code="credit_exceeds_invoice",
                    param=param,
                )
            credit_lines = _credit_spread(locked, lump, creditable, invoice_lines)
        subtotal = sum((line.amount for line in credit_lines), ZERO)
        tax = sum((line.tax_amount for line in credit_lines), ZERO)
        total = sum((line.total for line in credit_lines), ZERO)
        if total > remaining:
            raise ValidationError(
                f"At most {remaining} {locked.currency} can still be credited on invoice {locked}.",
                code="credit_exceeds_invoice",
                param=param,
            )
        if outcome == CreditNote.Outcome.REDUCE_AMOUNT_DUE:
            if total > locked.amount_due:
                raise ValidationError(
                    f"Only {locked.amount_due} {locked.currency} is due on invoice {locked}.",
                    code="credit_exceeds_amount_due",
                    param=param,
                )
            _refuse_while_charging(locked)
        today = clock.today()
        sequence, sequence_number, number = _take_number(
            DocumentSequence.Kind.CREDIT_NOTE, year=today.year, prefix=f"CN-{today.year}-"
        )
        credit_note = CreditNote.objects.create(
            invoice=locked,
            customer_id=locked.customer_id,
            currency=locked.currency,
            sequence=sequence,
            sequence_number=sequence_number,
            number=number,
            reason=reason,
            outcome=outcome,
            subtotal=subtotal,
            tax_amount=tax,
            total=total,
            memo=memo,
            issued_on=today,
            created_at=clock.now(),
        )
        for line in credit_lines:
            line.credit_note = credit_note
        CreditNoteLine.objects.bulk_create(credit_lines)
        audit_record(
            actor=actor,
            action="credit_note.create",
            instance=credit_note,
            after={
                **audit_snapshot(credit_note),
                "lines": [audit_snapshot(line) for line in credit_lines],
            },
        )
        settled = False
        if outcome == CreditNote.Outcome.CREDIT_BALANCE:
            customer_balance_adjust(
                customer=locked.customer,
                currency=locked.currency,
                amount=total,
                kind=CustomerBalanceTransaction.Kind.CREDIT_NOTE,
                actor=actor,
                memo=f"Credit note {number}",
                invoice=locked,
                credit_note=credit_note,
            )
            book_credit_note(credit_note=credit_note, counterparty=AccountCode.CUSTOMER_CREDIT)
        elif outcome == CreditNote.Outcome.REFUND:
            # Imported here: refunds build on this module's helpers.
            from billing.services.refunds import refunds_create_for_credit_note

            refunds_create_for_credit_note(credit_note=credit_note, invoice=locked, actor=actor)
        else:
            before = audit_snapshot(locked)
            locked.credited_total += total
            _set_amount_due(locked, now=clock.now())
            locked.save()
            # Taking all that was still due off the invoice settles it.
            settled = locked.status == Invoice.Status.PAID
            book_credit_note(credit_note=credit_note, counterparty=AccountCode.ACCOUNTS_RECEIVABLE)
            audit_record(
                actor=actor,
                action="invoice.credit",
                instance=locked,
                before=before,
                after=audit_snapshot(locked),
            )
        events = [
            EventSpec(
                type=EventType.CREDIT_NOTE_CREATED,
                payload=credit_note_payload(credit_note),
                customer_id=credit_note.customer_id,
            )
        ]
        if settled:
            events.append(_invoice_event(locked, EventType.INVOICE_PAID))
        event_emit_bulk(events=events)
    return credit_note


def _credit_chosen_lines(
    invoice: Invoice,
    chosen: Sequence[tuple[InvoiceLine, Decimal]],
    creditable: dict[int, Creditable],
    invoice_lines: dict[int, InvoiceLine],
) -> list[CreditNoteLine]:
    if not chosen:
        raise ValidationError("Choose at least one line.", code="no_lines", param="lines")
    seen: set[int] = set()
    credit_lines: list[CreditNoteLine] = []
    for index, (given_line, given_amount) in enumerate(chosen):
        param = f"lines[{index}]"
        line = invoice_lines.get(given_line.pk) if given_line.pk is not None else None
        if line is None:
            raise ValidationError(
                f"Line {given_line.pk} is not a line of invoice {invoice}.",
                code="line_not_on_invoice",
                param=f"{param}.invoice_line",
            )
        if line.pk in seen:
            raise ValidationError(
                f"Line {line.pk} is given twice.",
                code="duplicate_line",
                param=f"{param}.invoice_line",
            )
        seen.add(line.pk)
        amount = _credit_amount(given_amount, invoice.currency, param=f"{param}.amount")
        left = creditable[line.pk]
        if amount > left.amount:
            raise ValidationError(
                f"Line {line.pk} has {left.amount} {invoice.currency} left to credit (before tax).",
                code="credit_exceeds_line",
                param=f"{param}.amount",
            )
        if amount == left.amount:
            # The last of a line takes the last of its tax, so a line credited in several
            # steps is credited exactly, to the cent, in the end.
            tax = left.tax
        else:
            tax = _tax(amount, line.tax_percent, line.tax_inclusive, invoice.currency)
            tax = min(tax, left.tax)
        credit_lines.append(_credit_line(line, amount, tax))
    return credit_lines


def _credit_spread(
    invoice: Invoice,
    lump: Decimal,
    creditable: dict[int, Creditable],
    invoice_lines: dict[int, InvoiceLine],
) -> list[CreditNoteLine]:
    """Spread `lump` (tax included) over the lines in proportion to what each has left."""
    lines = [line for line in invoice_lines.values() if creditable[line.pk].total > 0]
    lines.sort(key=lambda line: (line.position, line.pk))
    shares = _allocate(lump, [creditable[line.pk].total for line in lines], invoice.currency)
    credit_lines: list[CreditNoteLine] = []
    for line, share in zip(lines, shares, strict=True):
        if share <= 0:
            continue
        left = creditable[line.pk]
        if share == left.total:
            amount, tax = left.amount, left.tax
        elif line.tax_inclusive:
            amount = share
            tax = min(_tax(share, line.tax_percent, True, invoice.currency), left.tax)
        else:
            # The share includes the tax: split it into the pre-tax part and its tax.
            amount = min(
                round_money(share * HUNDRED / (HUNDRED + line.tax_percent), invoice.currency),
                left.amount,
            )
            tax = share - amount
            if tax > left.tax:
                tax = left.tax
                amount = share - tax
        credit_lines.append(_credit_line(line, amount, tax))
    return credit_lines


def _allocate(lump: Decimal, weights: list[Decimal], currency: str) -> list[Decimal]:
    """`lump` in parts proportional to `weights` (each part at most its weight), rounded to the
    currency; the rounding remainder goes on the last part, so the parts add up exactly."""
    whole = sum(weights, ZERO)
    if lump == whole:
        return list(weights)
    shares = [round_money(lump * weight / whole, currency) for weight in weights[:-1]]
    shares.append(lump - sum(shares, ZERO))
    # The others' rounding can push the last part past its weight, or below zero; the
    # difference then moves to the parts before it that have room, from the last backwards.
    if shares[-1] > weights[-1]:
        excess, shares[-1] = shares[-1] - weights[-1], weights[-1]
        for index in reversed(range(len(shares) - 1)):
            take = min(weights[index] - shares[index], excess)
            shares[index] += take
            excess -= take
    elif shares[-1] < 0:
        deficit, shares[-1] = -shares[-1], ZERO
        for index in reversed(range(len(shares) - 1)):
            take = min(shares[index], deficit)
            shares[index] -= take
            deficit -= take
    return shares


def _credit_line(line: InvoiceLine, amount: Decimal, tax: Decimal) -> CreditNoteLine:
    return CreditNoteLine(
        invoice_line=line,
        description=line.description,
        amount=amount,
        tax_amount=tax,
        total=amount if line.tax_inclusive else amount + tax,
    )


def _credit_amount(value: Any, currency: str, *, param: str = "amount") -> Decimal:
    amount = _decimal(value, param=param, code="invalid_amount")
    if amount <= 0 or not is_rounded(amount, currency):
        raise ValidationError(
            f"A credit is more than 0, with at most the decimals of {currency}.",
            code="invalid_amount",
            param=param,
        )
    return amount


# --- customer credit balance --------------------------------------------------------------------


def customer_balance_adjust(
    *,
    customer: Customer,
    currency: str,
    amount: Decimal,
    kind: str,
    actor: Actor,
    memo: str = "",
    invoice: Invoice | None = None,
    credit_note: CreditNote | None = None,
) -> CustomerBalanceTransaction:
    """Move a customer's credit balance by `amount` (+ credit, - use) and record it.

    The balance row is locked for the change; a balance never goes below zero
    (`insufficient_balance`), which the database enforces as well.
    """
    currency = normalize_currency(currency)
    if customer.currency and customer.currency != currency:
        raise ValidationError(
            f"This customer is billed in {customer.currency}, not {currency}.",
            code="currency_mismatch",
            param="currency",
        )
    amount = _decimal(amount, param="amount", code="invalid_amount")
    if amount == 0 or not is_rounded(amount, currency):
        raise ValidationError(
            f"An adjustment is not 0 and has at most the decimals of {currency}.",
            code="invalid_amount",
            param="amount",
        )
    kind = _choice(kind, CustomerBalanceTransaction.Kind.values, param="kind", code="invalid_kind")
    memo = _clean_memo(memo, max_length=BALANCE_MEMO_MAX_LENGTH)
    with transaction.atomic():
        balance = _lock_balance(customer, currency)
        if balance.amount + amount < 0:
            raise ValidationError(
                f"The balance is {balance.amount} {currency}; it cannot go below zero.",
                code="insufficient_balance",
                param="amount",
            )
        before = audit_snapshot(balance)
        now = clock.now()
        balance.amount += amount
        balance.updated_at = now
        balance.save(update_fields=["amount", "updated_at"])
        entry = CustomerBalanceTransaction.objects.create(
            customer=customer,
            currency=currency,
            kind=kind,
            amount=amount,
            balance_after=balance.amount,
            invoice=invoice,
            credit_note=credit_note,
            memo=memo,
            created_at=now,
        )
        book_balance_transaction(transaction=entry)
        audit_record(
            actor=actor,
            action="customer_balance.adjust",
            instance=balance,
            before=before,
            after={**audit_snapshot(balance), "transaction": audit_snapshot(entry)},
        )
    return entry


# --- the line computation -----------------------------------------------------------------------


def _compute(
    *,
    customer: Customer,
    currency: str,
    billing_reason: str,
    specs: Sequence[tuple[LineSpec, bool]],
    memo: str,
    param: str,
    lookups: Lookups | None = None,
) -> tuple[Invoice, list[InvoiceLine]]:
    """The unsaved invoice and lines for `specs` ((spec, taxable) pairs): all the money math,
    validated, with reads only (shared by the invoices of a batch through `lookups`)."""
    if customer.pk is None:
        raise ValidationError("The customer must exist.", code="customer_not_found")
    currency = _invoice_currency(customer, currency)
    billing_reason = _choice(
        billing_reason,
        Invoice.BillingReason.values,
        param="billing_reason",
        code="invalid_billing_reason",
    )
    if not specs:
        raise ValidationError("An invoice has at least one line.", code="no_lines", param=param)
    if lookups is None or not lookups.references_checked:
        _check_references([spec for spec, _ in specs], param=param)
    coupons = _coupons([spec for spec, _ in specs], currency=currency, param=param)
    fixed_left = {
        coupon.pk: round_money(_fixed_amount(coupon, currency), currency)
        for coupon in coupons.values()
        if coupon.discount_type == Coupon.DiscountType.FIXED
    }
    lookups = lookups or Lookups()
    tax_rate = lookups.tax_rate(customer)
    invoice = Invoice(
        customer=customer,
        currency=currency,
        status=Invoice.Status.DRAFT,
        billing_reason=billing_reason,
        memo=_clean_memo(memo, max_length=MEMO_MAX_LENGTH),
        created_at=lookups.now,
    )
    lines: list[InvoiceLine] = []
    for position, (spec, taxable) in enumerate(specs):
        line_param = f"{param}[{position}]"
        line = _line(spec, currency=currency, param=line_param)
        line.invoice = invoice
        line.position = position
        coupon = coupons.get(spec.coupon_id) if spec.coupon_id is not None else None
        if coupon is not None:
            line.coupon = coupon
            line.discount_amount = _discount(line.amount, coupon, fixed_left, currency)
        rate = tax_rate if taxable else None
        taxable_amount = line.amount - line.discount_amount
        if rate is not None:
            line.tax_rate = rate
            line.tax_percent = rate.percentage
            line.tax_inclusive = rate.inclusive
            line.tax_amount = _tax(taxable_amount, rate.percentage, rate.inclusive, currency)
        else:
            line.tax_percent, line.tax_inclusive, line.tax_amount = ZERO, False, ZERO
        line.total = taxable_amount if line.tax_inclusive else taxable_amount + line.tax_amount
        lines.append(line)
    invoice.subtotal = sum((line.amount for line in lines), ZERO)
    invoice.discount_total = sum((line.discount_amount for line in lines), ZERO)
    invoice.tax_total = sum((line.tax_amount for line in lines), ZERO)
    invoice.total = sum((line.total for line in lines), ZERO)
    return invoice, lines


@dataclass
class Lookups:
    """Reads the invoices of a batch share: the time, tax rates per place, references
    checked once."""

    references_checked: bool = False
    _tax_rates: dict[tuple[str, str], TaxRate | None] = field(default_factory=dict)

    @cached_property
    def now(self) -> datetime:
        return clock.now()

    def tax_rate(self, customer: Customer) -> TaxRate | None:
        if not customer.country:
            return None
        place = (customer.country, customer.region)
        if place not in self._tax_rates:
            self._tax_rates[place] = tax_rate_for(country=customer.country, region=customer.region)
        return self._tax_rates[place]


def _line(spec: LineSpec, *, currency: str, param: str) -> InvoiceLine:
    kind = _choice(spec.kind, InvoiceLine.Kind.values, param=f"{param}.kind", code="invalid_kind")
    description = (spec.description or "").strip() if isinstance(spec.description, str) else ""
    if not description or len(description) > DESCRIPTION_MAX_LENGTH:
        raise ValidationError(
            f"A line has a description of 1 to {DESCRIPTION_MAX_LENGTH} characters.",
            code="invalid_description",
            param=f"{param}.description",
        )
    # With a given amount, quantity and unit amount only describe the line (usage aggregated
    # from event properties may carry any number of decimals): they are stored rounded. Without
    # one they make the amount, so they must be stored exactly as used.
    described = spec.amount is not None
    quantity = _stored_decimal(
        spec.quantity, param=f"{param}.quantity", code="invalid_quantity", round_to_fit=described
    )
    unit_amount = _stored_decimal(
        spec.unit_amount, param=f"{param}.unit_amount", round_to_fit=described
    )
    if quantity < 0:
        raise ValidationError(
            "A quantity is 0 or more.", code="invalid_quantity", param=f"{param}.quantity"
        )
    if unit_amount < 0:
        raise ValidationError(
            "A unit amount is 0 or more.", code="invalid_amount", param=f"{param}.unit_amount"
        )
    if (spec.period_start is None) != (spec.period_end is None) or (
        spec.period_start is not None
        and spec.period_end is not None
        and spec.period_start >= spec.period_end
    ):
        raise ValidationError(
            "A service period has a start before its (exclusive) end, or neither.",
            code="invalid_period",
            param=f"{param}.period_end",
        )
    if spec.amount is not None:
        raw = _decimal(spec.amount, param=f"{param}.amount", code="invalid_amount")
        if raw < 0 and kind != InvoiceLine.Kind.ADJUSTMENT:
            raise ValidationError(
                "Only an adjustment line has a negative amount (credits are negated by billing).",
                code="invalid_amount",
                param=f"{param}.amount",
            )
    else:
        raw = quantity * unit_amount
    proration_days = period_days = None
    if spec.proration is not None:
        proration_days, period_days = _proration(spec.proration, param=f"{param}.proration")
        raw = raw * proration_days / period_days
    amount = round_money(raw, currency)
    if kind == InvoiceLine.Kind.PRORATION_CREDIT and amount:
        amount = -amount
    return InvoiceLine(
        kind=kind,
        description=description,
        subscription_id=spec.subscription_id,
        plan_id=spec.plan_id,
        price_id=spec.price_id,
        meter_id=spec.meter_id,
        period_start=spec.period_start,
        period_end=spec.period_end,
        proration_days=proration_days,
        period_days=period_days,
        quantity=quantity,
        unit_amount=unit_amount,
        amount=amount,
        discount_amount=ZERO,
    )


def _proration(value: object, *, param: str) -> tuple[int, int]:
    if not (
        isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(part, int) and not isinstance(part, bool) for part in value)
    ):
        raise ValidationError(
            "A proration is (days, period days).", code="invalid_proration", param=param
        )
    days, period_days = value
    if period_days < 1 or not 0 <= days <= period_days:
        raise ValidationError(
            "A proration covers 0 to all of the days of a period of at least one day.",
            code="invalid_proration",
            param=param,
        )
    return days, period_days


def _discount(
    amount: Decimal, coupon: Coupon, fixed_left: dict[int, Decimal], currency: str
) -> Decimal:
    if coupon.discount_type == Coupon.DiscountType.PERCENT:
        assert coupon.percent_off is not None  # noqa: S101 - the database guarantees it
        return round_money(amount * coupon.percent_off / HUNDRED, currency)
    if amount <= 0:
        return ZERO  # a fixed amount off never makes a credit line bigger
    discount = min(fixed_left[coupon.pk], amount)
    fixed_left[coupon.pk] -= discount
    return discount


def _tax(taxable: Decimal, percent: Decimal, inclusive: bool, currency: str) -> Decimal:
    if inclusive:
        return round_money(taxable * percent / (HUNDRED + percent), currency)
    return round_money(taxable * percent / HUNDRED, currency)


def _coupons(specs: Sequence[LineSpec], *, currency: str, param: str) -> dict[int, Coupon]:
    ids = {spec.coupon_id for spec in specs if spec.coupon_id is not None}
    if not ids:  # most invoices: no query set up at all
        return {}
    coupons = Coupon.objects.prefetch_related("amounts").in_bulk(ids)
    for index, spec in enumerate(specs):
        if spec.coupon_id is None:
            continue
        coupon = coupons.get(spec.coupon_id)
        if coupon is None:
            raise ValidationError(
                f"No such coupon: {spec.coupon_id}.",
                code="coupon_not_found",
                param=f"{param}[{index}].coupon_id",
            )
        if coupon.discount_type == Coupon.DiscountType.FIXED:
            _fixed_amount(coupon, currency, param=f"{param}[{index}].coupon_id")
    return coupons


def _fixed_amount(coupon: Coupon, currency: str, *, param: str = "coupon_id") -> Decimal:
    amounts: list[CouponAmount] = list(coupon.amounts.all())
    for amount in amounts:
        if amount.currency == currency:
            return amount.amount_off
    raise ValidationError(
        f"Coupon {coupon.code} has no amount in {currency}.",
        code="coupon_not_applicable",
        param=param,
    )


def _check_references(specs: Sequence[LineSpec], *, param: str) -> None:
    """Plans, prices and meters named by the lines exist (else the insert fails at commit)."""
    references: list[tuple[str, type[Plan] | type[Price] | type[Meter]]] = [
        ("plan_id", Plan),
        ("price_id", Price),
        ("meter_id", Meter),
    ]
    for attribute, model in references:
        wanted = {getattr(spec, attribute) for spec in specs} - {None}
        if not wanted:
            continue
        found = set(model._default_manager.filter(pk__in=wanted).values_list("pk", flat=True))
        for index, spec in enumerate(specs):
            if getattr(spec, attribute) is not None and getattr(spec, attribute) not in found:
                raise ValidationError(
                    f"No such {attribute.removesuffix('_id')}: {getattr(spec, attribute)}.",
                    code=f"{attribute.removesuffix('_id')}_not_found",
                    param=f"{param}[{index}].{attribute}",
                )


def _save_invoice(
    invoice: Invoice, lines: list[InvoiceLine], *, actor: Actor, finalize: bool
) -> Invoice:
    with transaction.atomic():
        invoice.save()
        for line in lines:
            line.invoice = invoice
        try:
            with transaction.atomic():
                InvoiceLine.objects.bulk_create(lines)
        except IntegrityError as exc:
            if _violated_constraint(exc) in {
                "invoice_line_period_billed_once",
                "invoice_line_usage_billed_once",
            }:
                raise ConflictError(
                    "A service period of this subscription is already billed.",
                    code="period_already_billed",
                    param="lines",
                ) from exc
            raise
        audit_record(
            actor=actor,
            action="invoice.create",
            instance=invoice,
            after={**audit_snapshot(invoice), "lines": [audit_snapshot(line) for line in lines]},
        )
        if finalize:
            invoice = invoice_finalize(invoice=invoice, actor=actor)
    return invoice


def _violated_constraint(exc: IntegrityError) -> str | None:
    diag = getattr(exc.__cause__, "diag", None)
    return getattr(diag, "constraint_name", None)


# --- shared helpers -----------------------------------------------------------------------------


def _set_amount_due(invoice: Invoice, *, now: Any) -> None:
    invoice.amount_due = (
        max(invoice.total, ZERO)
        - invoice.credit_applied
        - invoice.credited_total
        - invoice.amount_paid
    )
    if invoice.amount_due == 0:
        invoice.status = Invoice.Status.PAID
        invoice.paid_at = invoice.paid_at or now
    else:
        invoice.status = Invoice.Status.OPEN


def _refuse_while_charging(invoice: Invoice) -> None:
    """What is due must not move under a charge in flight (or one whose outcome is unknown):
    it could be paid for twice. Call with the invoice locked."""
    if PaymentAttempt.objects.filter(
        invoice=invoice,
        status__in=[PaymentAttempt.Status.PENDING, PaymentAttempt.Status.UNKNOWN],
    ).exists():
        raise ConflictError(
            f"A payment of invoice {invoice} is in progress (or its outcome is not known yet); "
            "try again once it is settled.",
            code="payment_in_progress",
        )


def _lock_invoice(invoice: Invoice) -> Invoice:
    try:
        return (
            Invoice.objects.select_for_update(of=("self",))
            .select_related("customer")
            .get(pk=invoice.pk)
        )
    except Invoice.DoesNotExist:
        raise NotFoundError(
            f"No such invoice: {invoice.pk}.", code="invoice_not_found", param="invoice"
        ) from None


def _lock_balance(customer: Customer, currency: str) -> CustomerBalance:
    """The customer's balance row in `currency`, locked; created at zero the first time."""
    balances = CustomerBalance.objects.select_for_update()
    balance = balances.filter(customer=customer, currency=currency).first()
    if balance is None:
        # ON CONFLICT DO NOTHING: a concurrent first credit creates the same row; then wait
        # for its lock like everyone else.
        CustomerBalance.objects.bulk_create(
            [
                CustomerBalance(
                    customer=customer, currency=currency, amount=ZERO, updated_at=clock.now()
                )
            ],
            ignore_conflicts=True,
        )
        balance = balances.get(customer=customer, currency=currency)
    return balance


def _take_number(kind: str, *, year: int, prefix: str) -> tuple[DocumentSequence, int, str]:
    """The next number of the (kind, year) sequence, taken under its row lock.

    The lock is held until the surrounding transaction ends, so numbers are handed out one at
    a time and a rolled-back transaction gives its number back: no gaps, no duplicates.
    """
    sequence, first = _take_numbers(kind, year=year, prefix=prefix, count=1)
    return sequence, first, document_number(sequence, first)


def _take_numbers(kind: str, *, year: int, prefix: str, count: int) -> tuple[DocumentSequence, int]:
    """`count` consecutive numbers of the (kind, year) sequence (see `_take_number`): the
    sequence and the first of them."""
    sequences = DocumentSequence.objects.select_for_update()
    sequence = sequences.filter(kind=kind, name=str(year)).first()
    if sequence is None:
        DocumentSequence.objects.bulk_create(
            [DocumentSequence(kind=kind, name=str(year), prefix=prefix, next_number=1)],
            ignore_conflicts=True,
        )
        sequence = sequences.get(kind=kind, name=str(year))
    first = sequence.next_number
    sequence.next_number = first + count
    sequence.save(update_fields=["next_number"])
    return sequence, first


def document_number(sequence: DocumentSequence, number: int) -> str:
    return f"{sequence.prefix}{number:06d}"


def _invoice_currency(customer: Customer, currency: str) -> str:
    currency = normalize_currency(currency)
    if customer.currency and customer.currency != currency:
        raise ValidationError(
            f"This customer is billed in {customer.currency}, not {currency}.",
            code="currency_mismatch",
            param="currency",
        )
    return currency


def _choice(value: object, choices: Sequence[str], *, param: str, code: str) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValidationError(
            f"{value!r} is not one of: {', '.join(choices)}.", code=code, param=param
        )
    return value


def _decimal(value: object, *, param: str, code: str = "invalid_amount") -> Decimal:
    if isinstance(value, bool | float) or not isinstance(value, Decimal | int):
        raise ValidationError("Give a Decimal, never a float.", code=code, param=param)
    number = Decimal(value)
    if not number.is_finite():
        raise ValidationError("Give a finite number.", code=code, param=param)
    return number


def _stored_decimal(
    value: object, *, param: str, code: str = "invalid_amount", round_to_fit: bool = False
) -> Decimal:
    """A quantity or unit amount as it will be stored: at most DECIMAL_PLACES decimals."""
    number = _decimal(value, param=param, code=code)
    exponent = number.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -DECIMAL_PLACES:
        if round_to_fit:
            return number.quantize(Decimal(1).scaleb(-DECIMAL_PLACES), rounding=ROUND_HALF_UP)
        raise ValidationError(
            f"At most {DECIMAL_PLACES} decimals are stored.", code=code, param=param
        )
    return number


def _clean_memo(memo: object, *, max_length: int) -> str:
    if memo is None:
        return ""
    if not isinstance(memo, str) or len(memo.strip()) > max_length:
        raise ValidationError(
            f"A memo is text of at most {max_length} characters.",
            code="invalid_memo",
            param="memo",
        )
    return memo.strip()
