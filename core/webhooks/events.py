"""The catalogue of webhook event types: the one place that names them.

Other apps emit with these constants (`event_emit(type=EventType.INVOICE_PAID, ...)`), never
with a string literal, so a typo is an AttributeError at import instead of an event nobody can
subscribe to. Endpoints subscribe to types, to a whole group (`invoice.*`) or to everything
(`*`).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import models


class EventType(models.TextChoices):
    CUSTOMER_CREATED = "customer.created", "A customer was created."
    CUSTOMER_UPDATED = "customer.updated", "A customer's details changed."

    SUBSCRIPTION_CREATED = "subscription.created", "A subscription was created."
    SUBSCRIPTION_UPDATED = (
        "subscription.updated",
        "A subscription changed (plan, quantity, add-ons, cancel scheduled or undone...).",
    )
    SUBSCRIPTION_RENEWED = "subscription.renewed", "A subscription entered a new period."
    SUBSCRIPTION_PAUSED = "subscription.paused", "A subscription was paused."
    SUBSCRIPTION_RESUMED = "subscription.resumed", "A paused subscription resumed."
    SUBSCRIPTION_CANCELED = "subscription.canceled", "A subscription ended."
    SUBSCRIPTION_TRIAL_WILL_END = (
        "subscription.trial_will_end",
        "A trial ends soon (sent with the trial-ending notice).",
    )

    INVOICE_FINALIZED = "invoice.finalized", "An invoice was numbered and issued."
    INVOICE_PAID = "invoice.paid", "An invoice was paid in full."
    INVOICE_PAYMENT_FAILED = "invoice.payment_failed", "Collecting an invoice failed."
    INVOICE_VOIDED = "invoice.voided", "An invoice was voided."

    PAYMENT_SUCCEEDED = "payment.succeeded", "A payment succeeded."
    PAYMENT_FAILED = "payment.failed", "A payment attempt was declined or failed."

    REFUND_CREATED = "refund.created", "A payment was refunded (in full or in part)."

    CREDIT_NOTE_CREATED = "credit_note.created", "A credit note was issued."

    DUNNING_RETRY_SCHEDULED = (
        "dunning.retry_scheduled",
        "A failed payment will be retried at a scheduled date.",
    )
    DUNNING_ESCALATED = (
        "dunning.escalated",
        "An overdue subscription moved to the next dunning state (warning, blocked).",
    )
    DUNNING_RECOVERED = "dunning.recovered", "An overdue invoice was paid: dunning is over."
    DUNNING_FINAL_ACTION = (
        "dunning.final_action",
        "Dunning ran out: the final action (cancel, or leave unpaid) was taken.",
    )


# Sent only by the "test" action of one endpoint: no endpoint subscribes to it, `*` included.
PING = "ping"
WILDCARD = "*"

EVENT_TYPES: frozenset[str] = frozenset(EventType.values)
EVENT_GROUPS: frozenset[str] = frozenset(value.split(".", 1)[0] for value in EVENT_TYPES)
# What an endpoint may list in `enabled_events`: types, `<group>.*` and `*`.
SUBSCRIBABLE: frozenset[str] = EVENT_TYPES | {f"{g}.*" for g in EVENT_GROUPS} | {WILDCARD}


def event_group(type_: str) -> str:
    return type_.split(".", 1)[0]


def subscribes_to(enabled_events: Iterable[str], type_: str) -> bool:
    """Whether an endpoint listening to `enabled_events` receives events of `type_`."""
    if type_ not in EVENT_TYPES:
        return False
    enabled = set(enabled_events)
    return bool({WILDCARD, type_, f"{event_group(type_)}.*"} & enabled)


# Every type an event can have, `ping` included: the choices of the API's `type` fields.
EVENT_TYPE_CHOICES: list[tuple[str, str]] = sorted(
    [*EventType.choices, (PING, "A test sent to one endpoint.")]
)
