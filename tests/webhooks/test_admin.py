"""The Django admin of the webhooks: endpoints through the services, a read-only log with a
resend action."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from core.models import AuditLog
from core.webhooks.events import EventType
from core.webhooks.models import WebhookDelivery, WebhookEndpoint
from core.webhooks.services import event_emit, webhook_deliver
from tests.webhooks.conftest import Receiver

pytestmark = pytest.mark.django_db


def test_an_endpoint_added_in_the_admin_goes_through_the_service(
    admin_client: Client, clock: Any
) -> None:
    response = admin_client.post(
        reverse("admin:webhooks_webhookendpoint_add"),
        {
            "url": "https://hooks.example.com/in",
            "description": "CRM",
            "enabled_events": "invoice.paid,invoice.*",
            "partner": "",
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.enabled_events == ["invoice.*", "invoice.paid"]
    assert endpoint.secret.startswith("whsec_")
    entry = AuditLog.objects.get(action="webhook_endpoint.create")
    assert entry.actor_type == "user"
    change_page = admin_client.get(
        reverse("admin:webhooks_webhookendpoint_change", args=[endpoint.pk])
    )
    assert change_page.status_code == 200
    assert endpoint.secret in change_page.content.decode()  # staff can read it to copy it


@pytest.mark.parametrize(
    ("url", "events", "errors"),
    [
        (
            "http://hooks.example.com/in",
            "invoice.paid",
            {"url": ["Webhook endpoints must use https."]},
        ),
        (
            "https://hooks.example.com/in",
            "invoice.paid,invoice.nope",
            {"enabled_events": ["Unknown event type: 'invoice.nope'."]},
        ),
    ],
)
def test_the_admin_form_shows_the_services_refusals_on_the_field(
    admin_client: Client,
    clock: Any,
    settings: Any,
    url: str,
    events: str,
    errors: dict[str, list[str]],
) -> None:
    settings.TEST_MODE = False

    response = admin_client.post(
        reverse("admin:webhooks_webhookendpoint_add"),
        {"url": url, "enabled_events": events, "partner": ""},
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == errors
    assert not WebhookEndpoint.objects.exists()


def test_endpoint_actions_disable_and_enable(
    admin_client: Client, make_endpoint: Callable[..., WebhookEndpoint]
) -> None:
    endpoint = make_endpoint()
    changelist = reverse("admin:webhooks_webhookendpoint_changelist")

    admin_client.post(changelist, {"action": "disable", "_selected_action": [endpoint.pk]})
    endpoint.refresh_from_db()
    assert endpoint.status == WebhookEndpoint.Status.DISABLED
    assert endpoint.disabled_reason.startswith("Disabled by ")

    admin_client.post(changelist, {"action": "enable", "_selected_action": [endpoint.pk]})
    endpoint.refresh_from_db()
    assert endpoint.status == WebhookEndpoint.Status.ENABLED


def test_the_log_pages_show_events_and_deliveries_with_their_attempts(
    admin_client: Client, make_endpoint: Callable[..., WebhookEndpoint], receiver: Receiver
) -> None:
    make_endpoint()
    receiver.respond(500)
    event = event_emit(type=EventType.SUBSCRIPTION_PAUSED, payload={"id": 4})
    delivery = WebhookDelivery.objects.get(event=event)
    webhook_deliver(delivery_id=delivery.pk)

    pages = [
        reverse("admin:webhooks_webhookendpoint_changelist"),
        reverse("admin:webhooks_outboxevent_changelist"),
        reverse("admin:webhooks_outboxevent_change", args=[event.pk]),
        reverse("admin:webhooks_webhookdelivery_changelist"),
        reverse("admin:webhooks_webhookdelivery_change", args=[delivery.pk]),
    ]
    for page in pages:
        response = admin_client.get(page)
        assert response.status_code == 200, page
    delivery_page = admin_client.get(pages[-1]).content.decode()
    assert "The endpoint answered HTTP 500." in delivery_page
    assert admin_client.get(reverse("admin:webhooks_outboxevent_add")).status_code == 403


def test_the_resend_action_queues_the_delivery_again(
    admin_client: Client,
    make_endpoint: Callable[..., WebhookEndpoint],
    receiver: Receiver,
    django_capture_on_commit_callbacks: Any,
) -> None:
    make_endpoint()
    receiver.respond(500)
    delivery = WebhookDelivery.objects.get(
        event=event_emit(type=EventType.SUBSCRIPTION_RESUMED, payload={"id": 4})
    )
    webhook_deliver(delivery_id=delivery.pk)

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:webhooks_webhookdelivery_changelist"),
            {"action": "resend", "_selected_action": [delivery.pk]},
        )

    assert response.status_code == 302
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.SUCCEEDED
    assert delivery.attempt_count == 2
    assert AuditLog.objects.get(action="webhook_delivery.resend").actor_type == "user"
