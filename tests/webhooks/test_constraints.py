"""What PostgreSQL itself guarantees about the webhook tables, whatever the code does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import IntegrityError, transaction

from core.webhooks.events import EventType
from core.webhooks.models import (
    OutboxEvent,
    WebhookDelivery,
    WebhookDeliveryAttempt,
    WebhookEndpoint,
)
from core.webhooks.services import event_emit, webhook_deliver
from tests.conftest import FIXED_NOW
from tests.webhooks.conftest import Receiver

pytestmark = pytest.mark.django_db


def _refused(write: Callable[[], Any]) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        write()


def test_events_and_attempts_cannot_be_edited(
    make_endpoint: Callable[..., WebhookEndpoint], receiver: Receiver
) -> None:
    make_endpoint()
    event = event_emit(type=EventType.INVOICE_VOIDED, payload={"id": 1})
    webhook_deliver(delivery_id=WebhookDelivery.objects.get(event=event).pk)
    attempt = WebhookDeliveryAttempt.objects.get()

    _refused(lambda: OutboxEvent.objects.filter(pk=event.pk).update(payload={"id": 2}))
    _refused(lambda: WebhookDeliveryAttempt.objects.filter(pk=attempt.pk).update(error="x"))

    event.refresh_from_db()
    assert event.payload == {"id": 1}
    # Pruning stays possible: the event goes with its deliveries and their attempts.
    OutboxEvent.objects.filter(pk=event.pk).delete()
    assert not WebhookDeliveryAttempt.objects.exists()


def test_an_event_reaches_an_endpoint_through_one_delivery_only(
    make_endpoint: Callable[..., WebhookEndpoint],
) -> None:
    endpoint = make_endpoint()
    event = event_emit(type=EventType.INVOICE_VOIDED, payload={"id": 1})

    _refused(
        lambda: WebhookDelivery.objects.create(
            event=event,
            endpoint=endpoint,
            next_attempt_at=FIXED_NOW,
            created_at=FIXED_NOW,
            updated_at=FIXED_NOW,
        )
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"status": "succeeded"},  # succeeded without a time
        {"status": "abandoned"},  # closed but still scheduled
        {"next_attempt_at": None},  # open but never due
        {"round_start_attempt": 1},  # a round starting after attempts not made
    ],
)
def test_a_delivery_state_must_be_coherent(
    make_endpoint: Callable[..., WebhookEndpoint], changes: dict[str, Any]
) -> None:
    make_endpoint()
    delivery = WebhookDelivery.objects.get(
        event=event_emit(type=EventType.INVOICE_VOIDED, payload={"id": 1})
    )

    _refused(lambda: WebhookDelivery.objects.filter(pk=delivery.pk).update(**changes))


@pytest.mark.parametrize(
    "changes",
    [
        {"enabled_events": []},
        {"secret": "plain"},
        {"status": "disabled"},  # without a time
        {"disabled_reason": "why?"},  # while enabled
        {"consecutive_failures": 3},  # without a start
        {"previous_secret": "whsec_old"},  # without an end
    ],
)
def test_an_endpoint_state_must_be_coherent(
    make_endpoint: Callable[..., WebhookEndpoint], changes: dict[str, Any]
) -> None:
    endpoint = make_endpoint()

    _refused(lambda: WebhookEndpoint.objects.filter(pk=endpoint.pk).update(**changes))
