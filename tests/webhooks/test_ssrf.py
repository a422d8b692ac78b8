"""Webhooks are sent to public addresses only: an internal one is refused at registration and
again before each request (a name may point inside the network later)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from core.errors import ValidationError
from core.webhooks.events import EventType
from core.webhooks.models import WebhookDelivery, WebhookEndpoint
from core.webhooks.services import event_emit, webhook_endpoint_create
from core.webhooks.tasks import deliver_webhook
from tests.webhooks.conftest import STAFF, Receiver

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hooks",
        "http://localhost/hooks",
        "https://10.1.2.3/hooks",
        "https://169.254.169.254/latest/meta-data",
        "https://192.168.0.10/hooks",
        "https://100.64.0.1/hooks",
        "https://[::1]:9000/hooks",
        "https://[fd00::1]/hooks",
    ],
)
def test_an_internal_address_is_refused_at_registration(
    url: str, clock: Any, settings: Any
) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False

    with pytest.raises(ValidationError) as refused:
        webhook_endpoint_create(url=url, enabled_events=["*"], actor=STAFF)

    assert (refused.value.code, refused.value.param) == ("url_not_public", "url")
    assert not WebhookEndpoint.objects.exists()


def test_a_public_address_is_accepted(clock: Any, settings: Any) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False

    endpoint = webhook_endpoint_create(
        url="https://93.184.216.34/hooks", enabled_events=["*"], actor=STAFF
    )

    assert endpoint.url == "https://93.184.216.34/hooks"


def test_a_delivery_to_an_address_now_internal_is_not_sent(
    make_endpoint: Callable[..., WebhookEndpoint], receiver: Receiver, settings: Any
) -> None:
    # given an endpoint registered while internal addresses were allowed
    make_endpoint()
    delivery = WebhookDelivery.objects.get(
        event=event_emit(type=EventType.CREDIT_NOTE_CREATED, payload={"id": 1})
    )

    # when they are not any more and the delivery's attempt comes
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    deliver_webhook.delay(delivery.pk)

    # then nothing reached the receiver and the attempt says why
    assert receiver.requests == []
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.RETRYING
    assert delivery.last_error.startswith("Not sent: 127.0.0.1 resolves to a non-public address")
