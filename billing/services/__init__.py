"""Every write of billing, as one facade for the other apps and the doors.

`invoices` holds invoices, credit notes and the customer credit balance; `payment_methods`,
`payments` and `refunds` move the money through the gateways; `stripe_events` takes Stripe's
webhooks in; `bookings` books all of it in the ledger (billing.ledger).
"""

from billing.services.invoices import (
    InvoicePreview,
    LineSpec,
    OneOffItem,
    credit_note_create,
    customer_balance_adjust,
    invoice_create,
    invoice_create_one_off,
    invoice_delete_draft,
    invoice_finalize,
    invoice_mark_uncollectible,
    invoice_preview,
    invoice_void,
)

__all__ = [
    "InvoicePreview",
    "LineSpec",
    "OneOffItem",
    "credit_note_create",
    "customer_balance_adjust",
    "invoice_create",
    "invoice_create_one_off",
    "invoice_delete_draft",
    "invoice_finalize",
    "invoice_mark_uncollectible",
    "invoice_preview",
    "invoice_void",
]
