"""Subscription webhook events: noted as the timeline is written, emitted as the row is saved.

A lifecycle step changes the subscription in memory, writes its timeline events, then saves
it (`state.save`). The webhook event must carry the subscription as the API shows it *after*
the change, so `note` only remembers the event types on the instance and `emit_noted`, called
by `state.save` right after the row is written, emits them with one snapshot, in the same
transaction. One step that writes several timeline events of the same type (a plan and a
quantity change) sends that type once.
"""

from __future__ import annotations

from core.webhooks.events import EventType
from core.webhooks.services import EventSpec, event_emit_bulk
from subscriptions.models import Subscription, SubscriptionEvent
from subscriptions.webhook_payloads import subscription_payload

Kind = SubscriptionEvent.Kind

# Timeline kinds and the webhook event each announces. Not here: `reactivated` (the new
# subscription announces itself as created; the ended one does not change), payment failures
# and recoveries (dunning's own events), and the trial-ending notice (sent with the notice).
WEBHOOK_EVENT_FOR_KIND: dict[str, str] = {
    Kind.CREATED: EventType.SUBSCRIPTION_CREATED,
    Kind.STARTED: EventType.SUBSCRIPTION_UPDATED,
    Kind.PHASE_STARTED: EventType.SUBSCRIPTION_UPDATED,
    Kind.RENEWED: EventType.SUBSCRIPTION_RENEWED,
    Kind.PLAN_CHANGED: EventType.SUBSCRIPTION_UPDATED,
    Kind.QUANTITY_CHANGED: EventType.SUBSCRIPTION_UPDATED,
    Kind.CHANGE_SCHEDULED: EventType.SUBSCRIPTION_UPDATED,
    Kind.CHANGE_UNDONE: EventType.SUBSCRIPTION_UPDATED,
    Kind.PAUSE_SCHEDULED: EventType.SUBSCRIPTION_UPDATED,
    Kind.PAUSED: EventType.SUBSCRIPTION_PAUSED,
    Kind.RESUMED: EventType.SUBSCRIPTION_RESUMED,
    Kind.CANCEL_SCHEDULED: EventType.SUBSCRIPTION_UPDATED,
    Kind.CANCEL_UNDONE: EventType.SUBSCRIPTION_UPDATED,
    Kind.CANCELED: EventType.SUBSCRIPTION_CANCELED,
    Kind.DISCOUNT_APPLIED: EventType.SUBSCRIPTION_UPDATED,
    Kind.DISCOUNT_ENDED: EventType.SUBSCRIPTION_UPDATED,
}

_NOTED = "_webhook_events_noted"


def note(subscription: Subscription, type_: str | None) -> None:
    """Remember that the change being made announces `type_` (None: nothing)."""
    if type_ is None:
        return
    noted: list[str] = subscription.__dict__.setdefault(_NOTED, [])
    if type_ not in noted:
        noted.append(type_)


def note_timeline(subscription: Subscription, kind: str) -> None:
    note(subscription, WEBHOOK_EVENT_FOR_KIND.get(kind))


def emit_noted(subscription: Subscription) -> None:
    """Emit what was noted, with the subscription as it is now; call it once the row is saved."""
    noted: list[str] = subscription.__dict__.pop(_NOTED, [])
    if not noted:
        return
    payload = subscription_payload(subscription)
    event_emit_bulk(
        events=[
            EventSpec(type=type_, payload=payload, customer_id=subscription.customer_id)
            for type_ in noted
        ]
    )
