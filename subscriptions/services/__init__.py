"""Every write of the subscriptions app (the lifecycle), as one facade for the other apps.

The pure period and price arithmetic lives in `schedule`; `state` and `transitions` hold what
the services share; `lifecycle`, `changes` and `daily` are the services themselves.
"""

from subscriptions.services.changes import (
    ChangePreview,
    UpcomingInvoice,
    subscription_change_plan,
    subscription_change_quantity,
    subscription_next_invoice_preview,
    subscription_preview_change,
    subscription_undo_scheduled_change,
)
from subscriptions.services.daily import subscriptions_process_day
from subscriptions.services.lifecycle import (
    BundleResult,
    PauseWhen,
    Policy,
    subscription_cancel,
    subscription_create,
    subscription_create_bundle,
    subscription_pause,
    subscription_reactivate,
    subscription_renew,
    subscription_resume,
    subscription_undo_cancel,
)
from subscriptions.services.state import LifecycleResult

__all__ = [
    "BundleResult",
    "ChangePreview",
    "LifecycleResult",
    "PauseWhen",
    "Policy",
    "UpcomingInvoice",
    "subscription_cancel",
    "subscription_change_plan",
    "subscription_change_quantity",
    "subscription_create",
    "subscription_create_bundle",
    "subscription_next_invoice_preview",
    "subscription_pause",
    "subscription_preview_change",
    "subscription_reactivate",
    "subscription_renew",
    "subscription_resume",
    "subscription_undo_cancel",
    "subscription_undo_scheduled_change",
    "subscriptions_process_day",
]
