"""Manual resend: a delivery again, or an event to an endpoint that never had it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from core.errors import ConflictError, ValidationError
from core.models import AuditLog
from core.webhooks.events import EventType
from core.webhooks.models import OutboxEvent, WebhookDelivery, WebhookEndpoint
from core.webhooks.services import (
    event_emit,
    webhook_deliver,
    webhook_endpoint_disable,
    webhook_endpoint_ping,
    webhook_resend,
)
from customers.models import Customer, Partner
from tests.conftest import FIXED_NOW
from tests.webhooks.conftest import STAFF, Receiver

pytestmark = pytest.mark.django_db


def _emit(customer_id: int | None = None) -> OutboxEvent:
    return event_emit(type=EventType.REFUND_CREATED, payload={"id": 5}, customer_id=customer_id)


def test_an_abandoned_delivery_resent_gets_a_new_attempt_and_a_fresh_schedule(
    make_endpoint: Callable[..., WebhookEndpoint],
    receiver: Receiver,
    clock: Callable[..., Any],
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.WEBHOOK_RETRY_SCHEDULE = [60]
    make_endpoint()
    receiver.respond(500, 500, 500)
    delivery = WebhookDelivery.objects.get(event=_emit())
    webhook_deliver(delivery_id=delivery.pk)
    clock(FIXED_NOW + timedelta(minutes=1))
    webhook_deliver(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.ABANDONED
    clock(FIXED_NOW + timedelta(hours=3))

    with django_capture_on_commit_callbacks(execute=True):
        resent = webhook_resend(delivery=delivery, actor=STAFF)

    assert resent.status == WebhookDelivery.Status.PENDING  # as the resend left it
    delivery.refresh_from_db()
    # The third attempt failed too, but the schedule started over: one more retry.
    assert delivery.status == WebhookDelivery.Status.RETRYING
    assert delivery.attempt_count == 3
    assert delivery.next_attempt_at == FIXED_NOW + timedelta(hours=3, minutes=1)
    assert len(receiver.requests) == 3
    clock(FIXED_NOW + timedelta(hours=3, minutes=1))
    webhook_deliver(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.SUCCEEDED
    assert list(delivery.attempts.values_list("attempt_number", flat=True)) == [1, 2, 3, 4]
    entry = AuditLog.objects.get(action="webhook_delivery.resend")
    assert entry.before is not None
    assert entry.after is not None
    assert (entry.before["status"], entry.after["status"]) == ("abandoned", "pending")
    assert entry.actor_label == "alice"


def test_a_succeeded_delivery_can_be_sent_again(
    make_endpoint: Callable[..., WebhookEndpoint],
    receiver: Receiver,
    django_capture_on_commit_callbacks: Any,
) -> None:
    make_endpoint()
    delivery = WebhookDelivery.objects.get(event=_emit())
    webhook_deliver(delivery_id=delivery.pk)

    with django_capture_on_commit_callbacks(execute=True):
        webhook_resend(delivery=delivery, actor=STAFF)

    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.SUCCEEDED
    assert delivery.attempt_count == 2
    first, second = receiver.requests
    assert first.body == second.body
    assert first.headers["Webhook-Id"] == second.headers["Webhook-Id"]  # receivers dedupe on it


def test_an_event_can_be_sent_to_an_endpoint_created_after_it(
    make_endpoint: Callable[..., WebhookEndpoint],
    receiver: Receiver,
    django_capture_on_commit_callbacks: Any,
) -> None:
    event = _emit()
    endpoint = make_endpoint(enabled_events=["invoice.paid"])  # not even subscribed to it

    with django_capture_on_commit_callbacks(execute=True):
        delivery = webhook_resend(event=event, endpoint=endpoint, actor=STAFF)

    delivery.refresh_from_db()
    assert (delivery.event, delivery.endpoint) == (event, endpoint)
    assert delivery.status == WebhookDelivery.Status.SUCCEEDED
    assert len(receiver.requests) == 1
    # A second resend reuses the same delivery (one per event and endpoint).
    with django_capture_on_commit_callbacks(execute=True):
        again = webhook_resend(event=event, endpoint=endpoint, actor=STAFF)
    assert again.pk == delivery.pk
    assert WebhookDelivery.objects.count() == 1


def test_a_partner_endpoint_is_never_sent_another_partners_event(
    make_endpoint: Callable[..., WebhookEndpoint],
    make_partner: Callable[..., Partner],
    make_customer: Callable[..., Customer],
    receiver: Receiver,
) -> None:
    acme, globex = make_partner("acme"), make_partner("globex")
    globex_customer = make_customer(partner=globex)
    acme_endpoint = make_endpoint(partner=acme)
    globex_event = _emit(customer_id=globex_customer.pk)
    no_customer_event = _emit()

    for event in (globex_event, no_customer_event):
        with pytest.raises(ValidationError) as refused:
            webhook_resend(event=event, endpoint=acme_endpoint, actor=STAFF)
        assert refused.value.code == "event_not_for_endpoint"

    assert not WebhookDelivery.objects.filter(endpoint=acme_endpoint).exists()
    assert receiver.requests == []


def test_a_ping_cannot_be_sent_to_another_endpoint(
    make_endpoint: Callable[..., WebhookEndpoint],
) -> None:
    pinged, other = make_endpoint(), make_endpoint()
    ping = webhook_endpoint_ping(endpoint=pinged, actor=STAFF)

    with pytest.raises(ValidationError) as refused:
        webhook_resend(event=ping.event, endpoint=other, actor=STAFF)

    assert refused.value.code == "event_not_for_endpoint"


def test_nothing_is_resent_to_a_disabled_endpoint_nor_while_an_attempt_is_under_way(
    make_endpoint: Callable[..., WebhookEndpoint], receiver: Receiver
) -> None:
    endpoint = make_endpoint()
    busy = WebhookDelivery.objects.get(event=_emit())
    WebhookDelivery.objects.filter(pk=busy.pk).update(
        claimed_until=timezone.now() + timedelta(seconds=30)
    )

    with pytest.raises(ConflictError) as in_progress:
        webhook_resend(delivery=busy, actor=STAFF)
    webhook_endpoint_disable(endpoint=endpoint, actor=STAFF)
    with pytest.raises(ConflictError) as disabled:
        webhook_resend(delivery=busy, actor=STAFF)

    assert in_progress.value.code == "delivery_in_progress"
    assert disabled.value.code == "endpoint_disabled"
    assert not AuditLog.objects.filter(action="webhook_delivery.resend").exists()
    assert receiver.requests == []


def test_a_resend_names_a_delivery_or_an_event_and_an_endpoint(
    make_endpoint: Callable[..., WebhookEndpoint],
) -> None:
    endpoint = make_endpoint()
    event = _emit()
    delivery = WebhookDelivery.objects.get(event=event)

    with pytest.raises(ValidationError) as both:
        webhook_resend(delivery=delivery, event=event, endpoint=endpoint, actor=STAFF)
    with pytest.raises(ValidationError) as half:
        webhook_resend(event=event, actor=STAFF)

    assert both.value.code == half.value.code == "invalid_resend"
