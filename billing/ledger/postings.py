"""The postings of billing's events, as named services taking plain values.

Billing calls these (inside its own transaction) with amounts it has already computed; each
books one balanced entry through `ledger_post` and is idempotent on its key, which the caller
derives from what is being booked ("invoice:42:finalized", "payment:7"...). `party` is the
sub-ledger of receivables and customer credit (for example "customer:42"), so the ledger can
be reconciled customer by customer; it is empty for the shared accounts.

The entries (Dr debit / Cr credit):

- invoice finalized: Dr accounts_receivable (total) / Cr deferred_revenue (lines with a service
  period), Cr subscription_revenue (lines without), Cr tax_payable (tax);
- customer credit applied: Dr customer_credit / Cr accounts_receivable;
- customer credit granted: Dr refunds_and_credits / Cr customer_credit;
- payment: Dr cash / Cr accounts_receivable (Cr customer_credit for an overpayment);
- refund of a credit balance: Dr customer_credit / Cr cash;
- an invoice's credit lines: Dr deferred_revenue (lines with a service period, whose negative
  schedules give the revenue back day by day), Dr refunds_and_credits (lines without),
  Dr tax_payable (tax) / Cr accounts_receivable;
- credit note on lines without a schedule: Dr refunds_and_credits (net), Dr tax_payable (tax) /
  Cr accounts_receivable, customer_credit or cash;
- credit note or refund of a scheduled line: `recognition.recognition_reduce`;
- write-off of an uncollectible invoice: Dr bad_debt / Cr accounts_receivable;
- dispute opened: Dr disputed_funds (+ Dr chargeback_losses for the fee) / Cr cash;
  won: Dr cash / Cr disputed_funds; lost: Dr chargeback_losses / Cr disputed_funds;
- revenue recognition: Dr deferred_revenue / Cr subscription_revenue (`recognition_run`; the
  other way round for what credit lines give back).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from billing.ledger.models import AccountCode, JournalEntry
from billing.ledger.services import EntrySpec, Posting, ledger_post, ledger_post_batch
from core.errors import ValidationError
from core.money import parse_decimal

ZERO = Decimal("0")

A = AccountCode


def _amount(value: Decimal | int | str, param: str) -> Decimal:
    amount = parse_decimal(value, param=param)
    if amount < 0:
        raise ValidationError(
            "Amounts are zero or more; the posting says which way they go.",
            code="ledger_amount_not_positive",
            param=param,
        )
    return amount


def _post(entry: EntrySpec) -> JournalEntry:
    return ledger_post_batch(entries=[entry])[0]


def _lines(*candidates: tuple[str, str, str, Decimal, str]) -> list[Posting]:
    """Postings for the non-zero amounts among (side, code, currency, amount, party)."""
    return [
        Posting(account_code=code, currency=currency, side=side, amount=amount, party=party)
        for side, code, currency, amount, party in candidates
        if amount
    ]


def invoice_finalized_entry(
    *,
    key: str,
    currency: str,
    effective_date: date,
    receivable: Decimal,
    deferred: Decimal,
    tax: Decimal = ZERO,
    revenue: Decimal = ZERO,
    source_id: str | int,
    party: str = "",
) -> EntrySpec:
    """Dr accounts_receivable = Cr deferred_revenue + Cr subscription_revenue + Cr tax_payable.

    `deferred` is what recognition schedules will recognize (lines with a service period, net
    of discount), `revenue` what is earned at once (lines without one), `tax` the tax. The
    entry to post, alone (`post_invoice_finalized`) or in a batch (`ledger_post_batch`).
    """
    receivable, deferred = _amount(receivable, "receivable"), _amount(deferred, "deferred")
    tax, revenue = _amount(tax, "tax"), _amount(revenue, "revenue")
    if receivable != deferred + revenue + tax:
        raise ValidationError(
            f"The receivable {receivable} is not deferred {deferred} + revenue {revenue} + "
            f"tax {tax}.",
            code="ledger_unbalanced",
            param="receivable",
        )
    return EntrySpec(
        idempotency_key=key,
        effective_date=effective_date,
        source_type="invoice",
        source_id=str(source_id),
        description="Invoice finalized",
        lines=_lines(
            ("debit", A.ACCOUNTS_RECEIVABLE, currency, receivable, party),
            ("credit", A.DEFERRED_REVENUE, currency, deferred, ""),
            ("credit", A.SUBSCRIPTION_REVENUE, currency, revenue, ""),
            ("credit", A.TAX_PAYABLE, currency, tax, ""),
        ),
    )


def post_invoice_finalized(**terms: Any) -> JournalEntry:
    """Post `invoice_finalized_entry(**terms)`."""
    return _post(invoice_finalized_entry(**terms))


def post_credit_applied(
    *,
    key: str,
    currency: str,
    effective_date: date,
    amount: Decimal,
    source_id: str | int,
    party: str = "",
) -> JournalEntry:
    """The customer's credit balance pays part of an invoice: Dr customer_credit / Cr receivable."""
    amount = _amount(amount, "amount")
    return ledger_post(
        idempotency_key=key,
        effective_date=effective_date,
        source_type="credit_application",
        source_id=source_id,
        description="Customer credit applied to an invoice",
        lines=_lines(
            ("debit", A.CUSTOMER_CREDIT, currency, amount, party),
            ("credit", A.ACCOUNTS_RECEIVABLE, currency, amount, party),
        ),
    )


def post_credit_granted(
    *,
    key: str,
    currency: str,
    effective_date: date,
    amount: Decimal,
    source_id: str | int,
    party: str = "",
) -> JournalEntry:
    """A goodwill credit to the customer's balance: Dr refunds_and_credits / Cr customer_credit."""
    amount = _amount(amount, "amount")
    return ledger_post(
        idempotency_key=key,
        effective_date=effective_date,
        source_type="credit_grant",
        source_id=source_id,
        description="Credit granted to the customer's balance",
        lines=_lines(
            ("debit", A.REFUNDS_AND_CREDITS, currency, amount, ""),
            ("credit", A.CUSTOMER_CREDIT, currency, amount, party),
        ),
    )


def payment_entry(
    *,
    key: str,
    currency: str,
    effective_date: date,
    amount: Decimal,
    source_id: str | int,
    party: str = "",
    unapplied: Decimal = ZERO,
) -> EntrySpec:
    """Money received: Dr cash / Cr receivable, and Cr customer_credit for `unapplied` excess."""
    amount, unapplied = _amount(amount, "amount"), _amount(unapplied, "unapplied")
    if unapplied > amount:
        raise ValidationError("The unapplied part cannot exceed the payment.", param="unapplied")
    return EntrySpec(
        idempotency_key=key,
        effective_date=effective_date,
        source_type="payment",
        source_id=str(source_id),
        description="Payment received",
        lines=_lines(
            ("debit", A.CASH, currency, amount, ""),
            ("credit", A.ACCOUNTS_RECEIVABLE, currency, amount - unapplied, party),
            ("credit", A.CUSTOMER_CREDIT, currency, unapplied, party),
        ),
    )


def post_payment(**terms: Any) -> JournalEntry:
    """Post `payment_entry(**terms)`."""
    return _post(payment_entry(**terms))


def post_refund(
    *,
    key: str,
    currency: str,
    effective_date: date,
    amount: Decimal,
    source_id: str | int,
    party: str = "",
    from_account: str = A.CUSTOMER_CREDIT,
) -> JournalEntry:
    """Money paid back: Dr `from_account` (customer_credit, or receivable) / Cr cash.

    A refund that takes back invoiced lines goes through `recognition_reduce` (scheduled lines)
    or `post_credit_note` (the rest) with cash as the counterparty instead.
    """
    if from_account not in (A.CUSTOMER_CREDIT, A.ACCOUNTS_RECEIVABLE):
        raise ValidationError(
            "A refund is paid from customer_credit or accounts_receivable.", param="from_account"
        )
    amount = _amount(amount, "amount")
    return ledger_post(
        idempotency_key=key,
        effective_date=effective_date,
        source_type="refund",
        source_id=source_id,
        description="Refund paid",
        lines=_lines(
            ("debit", from_account, currency, amount, party),
            ("credit", A.CASH, currency, amount, ""),
        ),
    )


def credit_note_entry(
    *,
    key: str,
    currency: str,
    effective_date: date,
    counterparty: str,
    contra_revenue: Decimal,
    tax: Decimal = ZERO,
    source_id: str | int,
    party: str = "",
) -> EntrySpec:
    """Credit of invoiced amounts that have no recognition schedule (earned at once).

    Dr refunds_and_credits (net) + Dr tax_payable (tax) / Cr the counterparty:
    accounts_receivable (taken off what is due), customer_credit or cash (refunded).
    """
    if counterparty not in (A.ACCOUNTS_RECEIVABLE, A.CUSTOMER_CREDIT, A.CASH):
        raise ValidationError(
            "The counterparty is accounts_receivable, customer_credit or cash.",
            param="counterparty",
        )
    contra_revenue, tax = _amount(contra_revenue, "contra_revenue"), _amount(tax, "tax")
    return EntrySpec(
        idempotency_key=key,
        effective_date=effective_date,
        source_type="credit_note",
        source_id=str(source_id),
        description="Credit note",
        lines=_lines(
            ("debit", A.REFUNDS_AND_CREDITS, currency, contra_revenue, ""),
            ("debit", A.TAX_PAYABLE, currency, tax, ""),
            (
                "credit",
                counterparty,
                currency,
                contra_revenue + tax,
                "" if counterparty == A.CASH else party,
            ),
        ),
    )


def invoice_credit_lines_entry(
    *,
    key: str,
    currency: str,
    effective_date: date,
    deferred: Decimal,
    contra_revenue: Decimal,
    tax: Decimal,
    source_id: str | int,
    party: str = "",
) -> EntrySpec:
    """An invoice's credit lines, against its receivable.

    Dr deferred_revenue (`deferred`: lines with a service period, given back day by day by their
    schedules) + Dr refunds_and_credits (`contra_revenue`: lines without one, at once) +
    Dr tax_payable (tax) / Cr accounts_receivable.
    """
    deferred = _amount(deferred, "deferred")
    contra_revenue, tax = _amount(contra_revenue, "contra_revenue"), _amount(tax, "tax")
    return EntrySpec(
        idempotency_key=key,
        effective_date=effective_date,
        source_type="invoice",
        source_id=str(source_id),
        description="Invoice credit lines",
        lines=_lines(
            ("debit", A.DEFERRED_REVENUE, currency, deferred, ""),
            ("debit", A.REFUNDS_AND_CREDITS, currency, contra_revenue, ""),
            ("debit", A.TAX_PAYABLE, currency, tax, ""),
            ("credit", A.ACCOUNTS_RECEIVABLE, currency, deferred + contra_revenue + tax, party),
        ),
    )


def post_credit_note(**terms: Any) -> JournalEntry:
    """Post `credit_note_entry(**terms)`."""
    return _post(credit_note_entry(**terms))


def post_write_off(
    *,
    key: str,
    currency: str,
    effective_date: date,
    amount: Decimal,
    source_id: str | int,
    party: str = "",
) -> JournalEntry:
    """An uncollectible invoice's remaining due: Dr bad_debt / Cr accounts_receivable."""
    amount = _amount(amount, "amount")
    return ledger_post(
        idempotency_key=key,
        effective_date=effective_date,
        source_type="write_off",
        source_id=source_id,
        description="Uncollectible invoice written off",
        lines=_lines(
            ("debit", A.BAD_DEBT, currency, amount, ""),
            ("credit", A.ACCOUNTS_RECEIVABLE, currency, amount, party),
        ),
    )


DISPUTE_STAGES = ("opened", "won", "lost")


def post_dispute(
    *,
    key: str,
    currency: str,
    effective_date: date,
    amount: Decimal,
    stage: str,
    source_id: str | int,
    fee: Decimal = ZERO,
) -> JournalEntry:
    """A chargeback: the gateway takes the funds (and a fee) until the dispute is decided.

    opened: Dr disputed_funds (+ Dr chargeback_losses fee) / Cr cash;
    won: Dr cash / Cr disputed_funds; lost: Dr chargeback_losses / Cr disputed_funds.
    """
    if stage not in DISPUTE_STAGES:
        raise ValidationError("A dispute is opened, won or lost.", param="stage")
    amount, fee = _amount(amount, "amount"), _amount(fee, "fee")
    if fee and stage != "opened":
        raise ValidationError("The dispute fee is booked when it opens.", param="fee")
    if stage == "opened":
        lines = _lines(
            ("debit", A.DISPUTED_FUNDS, currency, amount, ""),
            ("debit", A.CHARGEBACK_LOSSES, currency, fee, ""),
            ("credit", A.CASH, currency, amount + fee, ""),
        )
    else:
        lines = _lines(
            ("debit", A.CASH if stage == "won" else A.CHARGEBACK_LOSSES, currency, amount, ""),
            ("credit", A.DISPUTED_FUNDS, currency, amount, ""),
        )
    return ledger_post(
        idempotency_key=key,
        effective_date=effective_date,
        source_type="dispute",
        source_id=source_id,
        description=f"Dispute {stage}",
        lines=lines,
    )
