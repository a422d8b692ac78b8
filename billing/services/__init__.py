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
from billing.services.payment_methods import (
    payment_method_attach,
    payment_method_detach,
    payment_method_set_default,
)
from billing.services.payments import (
    default_payment_method,
    invoice_autocharge,
    invoice_pay_now,
    invoices_autocharge,
    payment_attempt_reconcile,
    payment_method_updated,
    payment_record_offline,
    payment_retry_blocked,
)
from billing.services.refunds import refund_create, refund_execute
from billing.services.stripe_events import stripe_event_process, stripe_event_receive

__all__ = [
    "InvoicePreview",
    "LineSpec",
    "OneOffItem",
    "credit_note_create",
    "customer_balance_adjust",
    "default_payment_method",
    "invoice_autocharge",
    "invoice_create",
    "invoice_create_one_off",
    "invoice_delete_draft",
    "invoice_finalize",
    "invoice_mark_uncollectible",
    "invoice_pay_now",
    "invoice_preview",
    "invoice_void",
    "invoices_autocharge",
    "payment_attempt_reconcile",
    "payment_method_attach",
    "payment_method_detach",
    "payment_method_set_default",
    "payment_method_updated",
    "payment_record_offline",
    "payment_retry_blocked",
    "refund_create",
    "refund_execute",
    "stripe_event_process",
    "stripe_event_receive",
]
