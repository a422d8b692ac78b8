"""The webhooks over HTTP: endpoints managed with the admin scope (the secret shown only on
creation and roll), events and the delivery log readable, partner keys confined to their own."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from rest_framework.test import APIClient

from core.models import AuditLog
from core.webhooks.events import EventType
from core.webhooks.models import OutboxEvent, WebhookDelivery, WebhookEndpoint
from core.webhooks.services import event_emit, webhook_deliver
from customers.models import Customer, Partner
from tests.conftest import FIXED_NOW
from tests.webhooks.conftest import Receiver
from tests.webhooks.verification import verify_webhook

pytestmark = pytest.mark.django_db

ENDPOINTS = "/api/v1/webhook_endpoints"


def _create(api: APIClient, **body: Any) -> Any:
    return api.post(ENDPOINTS, body, format="json")


def test_creating_an_endpoint_shows_its_secret_once(api: APIClient, receiver: Receiver) -> None:
    response = _create(
        api, url=receiver.url, enabled_events=["invoice.*", "payment.failed"], description="ERP"
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    endpoint = WebhookEndpoint.objects.get()
    assert body == {
        "id": endpoint.pk,
        "url": receiver.url,
        "description": "ERP",
        "enabled_events": ["invoice.*", "payment.failed"],
        "status": "enabled",
        "disabled_reason": "",
        "disabled_at": None,
        "consecutive_failures": 0,
        "failing_since": None,
        "partner": None,
        "created_at": "2026-01-15T12:00:00Z",
        "updated_at": "2026-01-15T12:00:00Z",
        "secret": endpoint.secret,
    }
    shown_again = api.get(f"{ENDPOINTS}/{endpoint.pk}").json()
    assert "secret" not in shown_again
    assert endpoint.secret not in json.dumps(api.get(ENDPOINTS).json())
    entry = AuditLog.objects.get(action="webhook_endpoint.create")
    assert entry.actor_type == "api_key"


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({"url": "ftp://x.example/y", "enabled_events": ["*"]}, "invalid_url", "url"),
        ({"enabled_events": ["*"]}, "required", "url"),
        ({"url": "https://x.example/y"}, "required", "enabled_events"),
        (
            {"url": "https://x.example/y", "enabled_events": ["invoice.paid", "nope"]},
            "unknown_event_type",
            "enabled_events[1]",
        ),
        (
            {"url": "https://x.example/y", "enabled_events": ["*"], "partner": "nobody"},
            "partner_not_found",
            "partner",
        ),
    ],
)
def test_an_invalid_endpoint_is_a_400_naming_the_field(
    api: APIClient, body: dict[str, Any], code: str, param: str
) -> None:
    response = _create(api, **body)

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", code, param)
    assert not WebhookEndpoint.objects.exists()


def test_https_is_required_outside_development(api: APIClient, settings: Any) -> None:
    settings.TEST_MODE = False

    response = _create(api, url="http://hooks.example.com/in", enabled_events=["*"])

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "https_required"


def test_an_endpoint_is_changed_disabled_enabled_and_given_a_new_secret(
    api: APIClient, receiver: Receiver
) -> None:
    endpoint_id = _create(api, url=receiver.url, enabled_events=["*"]).json()["id"]
    url = f"{ENDPOINTS}/{endpoint_id}"

    changed = api.patch(url, {"enabled_events": ["customer.*"]}, format="json")
    disabled = api.post(f"{url}/disable", {"reason": "Maintenance"}, format="json")
    enabled = api.post(f"{url}/enable")
    old_secret = WebhookEndpoint.objects.get().secret
    rolled = api.post(f"{url}/roll_secret", {"keep_previous_hours": 6}, format="json")

    assert changed.status_code == 200
    assert changed.json()["enabled_events"] == ["customer.*"]
    assert disabled.status_code == 200
    assert disabled.json()["status"] == "disabled"
    assert disabled.json()["disabled_reason"] == "Maintenance"
    assert disabled.json()["disabled_at"] == "2026-01-15T12:00:00Z"
    assert enabled.json()["status"] == "enabled"
    assert enabled.json()["disabled_reason"] == ""
    assert rolled.status_code == 200
    endpoint = WebhookEndpoint.objects.get()
    assert rolled.json()["secret"] == endpoint.secret != old_secret
    assert endpoint.previous_secret == old_secret
    assert endpoint.previous_secret_expires_at == FIXED_NOW + timedelta(hours=6)
    actions = list(AuditLog.objects.order_by("id").values_list("action", flat=True))
    assert actions[-4:] == [
        "webhook_endpoint.update",
        "webhook_endpoint.disable",
        "webhook_endpoint.enable",
        "webhook_endpoint.roll_secret",
    ]


def test_the_test_action_sends_a_signed_ping(
    api: APIClient, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    endpoint_id = _create(api, url=receiver.url, enabled_events=["invoice.paid"]).json()["id"]
    secret = WebhookEndpoint.objects.get().secret

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"{ENDPOINTS}/{endpoint_id}/test")

    assert response.status_code == 201
    body = response.json()
    assert body["endpoint"] == endpoint_id
    assert body["event_type"] == "ping"
    assert body["status"] == "pending"  # answered before the commit sent it
    (request,) = receiver.requests
    assert json.loads(request.body)["type"] == "ping"
    assert verify_webhook(request.body, request.headers["Webhook-Signature"], secret)
    delivery = api.get(f"/api/v1/webhook_deliveries/{body['id']}").json()
    assert delivery["status"] == "succeeded"
    assert [a["response_status"] for a in delivery["attempts"]] == [200]


def test_events_are_listed_newest_first_with_filters_and_shown_with_their_deliveries(
    api: APIClient,
    make_endpoint: Callable[..., WebhookEndpoint],
    make_customer: Callable[..., Customer],
    clock: Callable[..., Any],
) -> None:
    customer = make_customer()
    endpoint = make_endpoint(enabled_events=["invoice.*"])
    paid = event_emit(type=EventType.INVOICE_PAID, payload={"id": 1}, customer_id=customer.pk)
    clock(FIXED_NOW + timedelta(days=1))
    created = event_emit(type=EventType.CUSTOMER_UPDATED, payload={"id": customer.pk})
    voided = event_emit(type=EventType.INVOICE_VOIDED, payload={"id": 1}, customer_id=customer.pk)

    everything = api.get("/api/v1/events").json()["results"]
    invoices_paid = api.get("/api/v1/events", {"type": "invoice.paid"}).json()["results"]
    of_customer = api.get("/api/v1/events", {"customer": customer.pk}).json()["results"]
    recent = api.get("/api/v1/events", {"created_after": "2026-01-16T00:00:00Z"}).json()
    detail = api.get(f"/api/v1/events/{paid.public_id}").json()

    # Creating the customer announced it first.
    signed_up = OutboxEvent.objects.get(type=EventType.CUSTOMER_CREATED, customer_id=customer.pk)
    assert [e["id"] for e in everything] == [
        voided.public_id,
        created.public_id,
        paid.public_id,
        signed_up.public_id,
    ]
    assert [e["id"] for e in invoices_paid] == [paid.public_id]
    assert [e["id"] for e in of_customer] == [
        voided.public_id,
        paid.public_id,
        signed_up.public_id,
    ]
    assert [e["id"] for e in recent["results"]] == [voided.public_id, created.public_id]
    delivery = WebhookDelivery.objects.get(event=paid)
    assert detail == {
        "id": paid.public_id,
        "type": "invoice.paid",
        "customer": customer.pk,
        "data": {"id": 1},
        "created_at": "2026-01-15T12:00:00Z",
        "deliveries": [
            {
                "id": delivery.pk,
                "event": paid.public_id,
                "event_type": "invoice.paid",
                "endpoint": endpoint.pk,
                "status": "pending",
                "attempt_count": 0,
                "next_attempt_at": "2026-01-15T12:00:00Z",
                "last_attempt_at": None,
                "last_response_status": None,
                "last_response_excerpt": "",
                "last_error": "",
                "succeeded_at": None,
                "created_at": "2026-01-15T12:00:00Z",
            }
        ],
    }
    missing = api.get("/api/v1/events/evt_00000000000000000000000000000000")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "event_not_found"
    bad_type = api.get("/api/v1/events", {"type": "invoice.exploded"})
    assert bad_type.status_code == 400
    assert bad_type.json()["error"]["param"] == "type"


def test_the_delivery_log_lists_filters_shows_attempts_and_resends(
    api: APIClient,
    make_endpoint: Callable[..., WebhookEndpoint],
    receiver: Receiver,
    clock: Callable[..., Any],
    django_capture_on_commit_callbacks: Any,
) -> None:
    first, second = make_endpoint(), make_endpoint(enabled_events=["refund.created"])
    receiver.respond(500)
    event = event_emit(type=EventType.REFUND_CREATED, payload={"id": 9})
    failing = WebhookDelivery.objects.get(event=event, endpoint=first)
    webhook_deliver(delivery_id=failing.pk)
    other = WebhookDelivery.objects.get(event=event, endpoint=second)

    by_endpoint = api.get("/api/v1/webhook_deliveries", {"endpoint": first.pk}).json()
    by_status = api.get("/api/v1/webhook_deliveries", {"status": "retrying"}).json()
    by_event = api.get("/api/v1/webhook_deliveries", {"event": event.public_id}).json()
    detail = api.get(f"/api/v1/webhook_deliveries/{failing.pk}").json()
    with django_capture_on_commit_callbacks(execute=True):
        resent = api.post(f"/api/v1/webhook_deliveries/{failing.pk}/resend")

    assert [d["id"] for d in by_endpoint["results"]] == [failing.pk]
    assert [d["id"] for d in by_status["results"]] == [failing.pk]
    assert [d["id"] for d in by_event["results"]] == [other.pk, failing.pk]
    assert detail["status"] == "retrying"
    assert detail["next_attempt_at"] == "2026-01-15T12:01:00Z"
    (attempt,) = detail["attempts"]
    assert attempt["attempt_number"] == 1
    assert attempt["response_status"] == 500
    assert attempt["succeeded"] is False
    assert attempt["error"] == "The endpoint answered HTTP 500."
    assert attempt["url"] == receiver.url
    assert attempt["request_headers"]["Content-Type"] == "application/json"
    assert attempt["request_headers"]["Webhook-Id"] == event.public_id
    assert resent.status_code == 200
    assert resent.json()["status"] == "pending"
    failing.refresh_from_db()
    assert failing.status == WebhookDelivery.Status.SUCCEEDED
    assert failing.attempt_count == 2


def test_a_read_key_reads_but_only_an_admin_key_manages(
    api_client_for: Callable[..., APIClient],
    make_endpoint: Callable[..., WebhookEndpoint],
) -> None:
    endpoint = make_endpoint()
    reader = api_client_for(scopes=["read"])
    writer = api_client_for(scopes=["write"])

    assert reader.get(ENDPOINTS).status_code == 200
    assert reader.get("/api/v1/events").status_code == 200
    assert reader.get("/api/v1/webhook_deliveries").status_code == 200
    for client in (reader, writer):
        for method, path in (
            ("post", ENDPOINTS),
            ("patch", f"{ENDPOINTS}/{endpoint.pk}"),
            ("post", f"{ENDPOINTS}/{endpoint.pk}/disable"),
            ("post", f"{ENDPOINTS}/{endpoint.pk}/roll_secret"),
        ):
            response = getattr(client, method)(path, {}, format="json")
            assert response.status_code == 403, (method, path)
            assert response.json()["error"]["message"] == "This API key lacks the `admin` scope."
    endpoint.refresh_from_db()
    assert endpoint.status == WebhookEndpoint.Status.ENABLED


def test_a_partner_key_sees_only_its_endpoints_its_customers_events_and_its_deliveries(
    api_client_for: Callable[..., APIClient],
    make_endpoint: Callable[..., WebhookEndpoint],
    make_partner: Callable[..., Partner],
    make_customer: Callable[..., Customer],
) -> None:
    acme, globex = make_partner("acme"), make_partner("globex")
    acme_customer, globex_customer = make_customer(partner=acme), make_customer(partner=globex)
    acme_endpoint = make_endpoint(partner=acme)
    globex_endpoint = make_endpoint(partner=globex)
    platform_endpoint = make_endpoint()
    acme_event = event_emit(
        type=EventType.INVOICE_PAID, payload={"id": 1}, customer_id=acme_customer.pk
    )
    globex_event = event_emit(
        type=EventType.INVOICE_PAID, payload={"id": 2}, customer_id=globex_customer.pk
    )
    client = api_client_for(scopes=["read"], partner=acme)

    endpoints = client.get(ENDPOINTS).json()["results"]
    events = client.get("/api/v1/events").json()["results"]
    deliveries = client.get("/api/v1/webhook_deliveries").json()["results"]
    detail = client.get(f"/api/v1/events/{acme_event.public_id}").json()

    assert [e["id"] for e in endpoints] == [acme_endpoint.pk]
    assert endpoints[0]["partner"] == "acme"
    acme_signed_up = OutboxEvent.objects.get(
        type=EventType.CUSTOMER_CREATED, customer_id=acme_customer.pk
    )
    assert [e["id"] for e in events] == [acme_event.public_id, acme_signed_up.public_id]
    assert [d["endpoint"] for d in deliveries] == [acme_endpoint.pk]
    # The platform's own endpoint got the event too, but that is not the partner's business.
    assert [d["endpoint"] for d in detail["deliveries"]] == [acme_endpoint.pk]
    assert WebhookDelivery.objects.filter(event=acme_event, endpoint=platform_endpoint).exists()
    globex_delivery = WebhookDelivery.objects.get(endpoint=globex_endpoint)
    for path in (
        f"{ENDPOINTS}/{globex_endpoint.pk}",
        f"{ENDPOINTS}/{platform_endpoint.pk}",
        f"/api/v1/events/{globex_event.public_id}",
        f"/api/v1/webhook_deliveries/{globex_delivery.pk}",
    ):
        assert client.get(path).status_code == 404, path


def test_the_webhook_operations_are_in_the_openapi_spec(api: APIClient) -> None:
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    operations = {
        operation["operationId"]
        for path, methods in schema["paths"].items()
        # Outbound webhooks only: /webhooks/stripe takes Stripe's webhooks in (billing).
        if ("webhook" in path or "/events" in path) and path != "/api/v1/webhooks/stripe"
        for operation in methods.values()
    }

    assert operations == {
        "webhook_endpoints_list",
        "webhook_endpoints_create",
        "webhook_endpoints_retrieve",
        "webhook_endpoints_update",
        "webhook_endpoints_disable",
        "webhook_endpoints_enable",
        "webhook_endpoints_roll_secret",
        "webhook_endpoints_test",
        "events_list",
        "events_retrieve",
        "webhook_deliveries_list",
        "webhook_deliveries_retrieve",
        "webhook_deliveries_resend",
    }
    assert "secret" in schema["components"]["schemas"]["WebhookEndpointWithSecret"]["properties"]
    assert "secret" not in schema["components"]["schemas"]["WebhookEndpoint"]["properties"]
    event_types = schema["components"]["schemas"]["EventTypeEnum"]["enum"]
    assert set(event_types) == {*(t.value for t in EventType), "ping"}
    assert OutboxEvent.objects.count() == 0
