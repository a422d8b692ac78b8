"""The outbox: events are written with the change that causes them, fanned out to the endpoints
that subscribe, and sent only after the commit."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.db import transaction

from core.errors import ConflictError, ValidationError
from core.webhooks.events import EventType
from core.webhooks.models import OutboxEvent, WebhookDelivery, WebhookEndpoint
from core.webhooks.services import (
    EventSpec,
    event_emit,
    event_emit_bulk,
    webhook_deliver,
    webhook_endpoint_disable,
    webhook_resend,
)
from customers.models import Customer, Partner
from customers.services import partner_deactivate
from tests.conftest import FIXED_NOW
from tests.webhooks.conftest import STAFF, Receiver

pytestmark = pytest.mark.django_db


class Boom(Exception):
    pass


def _delivered_types(receiver: Receiver) -> list[str]:
    return [json.loads(request.body)["type"] for request in receiver.requests]


def test_an_event_is_stored_with_one_delivery_per_subscribed_enabled_endpoint(
    make_endpoint: Callable[..., WebhookEndpoint],
) -> None:
    everything = make_endpoint(enabled_events=["*"])
    invoices = make_endpoint(enabled_events=["invoice.*"])
    paid_only = make_endpoint(enabled_events=["invoice.paid"])
    customers = make_endpoint(enabled_events=["customer.created", "customer.updated"])
    disabled = make_endpoint(enabled_events=["*"])
    webhook_endpoint_disable(endpoint=disabled, actor=STAFF)

    event = event_emit(type=EventType.INVOICE_PAID, payload={"id": 7}, customer_id=None)

    stored = OutboxEvent.objects.get()
    assert stored == event
    assert stored.type == "invoice.paid"
    assert stored.public_id.startswith("evt_")
    assert len(stored.public_id) == 36
    assert stored.created_at == FIXED_NOW
    deliveries = WebhookDelivery.objects.filter(event=event)
    assert {d.endpoint_id for d in deliveries} == {everything.pk, invoices.pk, paid_only.pk}
    assert customers.pk not in {d.endpoint_id for d in deliveries}
    for delivery in deliveries:
        assert delivery.status == WebhookDelivery.Status.PENDING
        assert delivery.next_attempt_at == FIXED_NOW
        assert delivery.attempt_count == 0


def test_the_payload_is_stored_as_json_with_decimals_and_dates_as_strings(
    make_endpoint: Callable[..., WebhookEndpoint],
) -> None:
    event = event_emit(
        type=EventType.PAYMENT_SUCCEEDED,
        payload={
            "amount": Decimal("19.90"),
            "currency": "EUR",
            "paid_on": date(2026, 1, 15),
            "at": datetime(2026, 1, 15, 12, 0, tzinfo=UTC),
            "lines": [{"amount": Decimal("0.10")}],
        },
        customer_id=42,
    )

    event.refresh_from_db()
    assert event.payload == {
        "amount": "19.90",
        "currency": "EUR",
        "paid_on": "2026-01-15",
        "at": "2026-01-15T12:00:00Z",
        "lines": [{"amount": "0.10"}],
    }
    assert event.customer_id == 42


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"type": "invoice.exploded", "payload": {}}, "unknown_event_type"),
        ({"type": "ping", "payload": {}}, "unknown_event_type"),
        ({"type": EventType.INVOICE_PAID, "payload": {"x": object()}}, "invalid_payload"),
        ({"type": EventType.INVOICE_PAID, "payload": ["not", "an", "object"]}, "invalid_payload"),
        (
            {"type": EventType.INVOICE_PAID, "payload": {}, "customer_id": "12"},
            "invalid_customer_id",
        ),
    ],
)
def test_an_invalid_event_is_refused_and_nothing_is_written(
    make_endpoint: Callable[..., WebhookEndpoint], kwargs: dict[str, Any], code: str
) -> None:
    make_endpoint()

    with pytest.raises(ValidationError) as refused:
        event_emit(**kwargs)

    assert refused.value.code == code
    assert not OutboxEvent.objects.exists()
    assert not WebhookDelivery.objects.exists()


def test_a_rolled_back_change_leaves_no_event_and_sends_nothing(
    make_endpoint: Callable[..., WebhookEndpoint],
    receiver: Receiver,
    make_partner: Callable[..., Partner],
    django_capture_on_commit_callbacks: Any,
) -> None:
    make_endpoint()

    def change_that_fails() -> None:
        with transaction.atomic():
            partner = make_partner("doomed")
            event_emit(type=EventType.CUSTOMER_CREATED, payload={"partner": partner.code})
            raise Boom

    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(Boom):
        change_that_fails()

    assert callbacks == []
    assert not Partner.objects.filter(code="doomed").exists()
    assert not OutboxEvent.objects.exists()
    assert not WebhookDelivery.objects.exists()
    assert receiver.requests == []


def test_nothing_is_sent_before_the_commit_and_the_event_is_sent_after_it(
    make_endpoint: Callable[..., WebhookEndpoint],
    receiver: Receiver,
    django_capture_on_commit_callbacks: Any,
) -> None:
    make_endpoint()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with transaction.atomic():
            event = event_emit(type=EventType.SUBSCRIPTION_CREATED, payload={"id": 1})
            # Still inside the transaction: queued for after the commit, not sent.
            assert receiver.requests == []
        assert receiver.requests == []  # the capture runs the callbacks when it exits

    assert len(callbacks) == 1
    assert _delivered_types(receiver) == ["subscription.created"]
    delivery = WebhookDelivery.objects.get(event=event)
    assert delivery.status == WebhookDelivery.Status.SUCCEEDED
    assert delivery.attempt_count == 1


def test_without_endpoints_an_event_is_stored_and_nothing_is_queued(
    clock: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        event_emit(type=EventType.DUNNING_ESCALATED, payload={"subscription": 3})

    assert OutboxEvent.objects.get().type == "dunning.escalated"
    assert not WebhookDelivery.objects.exists()
    assert callbacks == []


def test_a_partner_endpoint_gets_only_events_about_its_own_customers(
    make_endpoint: Callable[..., WebhookEndpoint],
    make_partner: Callable[..., Partner],
    make_customer: Callable[..., Customer],
    receiver: Receiver,
    django_capture_on_commit_callbacks: Any,
) -> None:
    acme, globex = make_partner("acme"), make_partner("globex")
    acme_customer = make_customer(partner=acme)
    globex_customer = make_customer(partner=globex)
    direct_customer = make_customer()
    acme_endpoint = make_endpoint(partner=acme)
    platform_endpoint = make_endpoint()

    with django_capture_on_commit_callbacks(execute=True):
        acme_event = event_emit(
            type=EventType.INVOICE_PAID, payload={"n": 1}, customer_id=acme_customer.pk
        )
        globex_event = event_emit(
            type=EventType.INVOICE_PAID, payload={"n": 2}, customer_id=globex_customer.pk
        )
        direct_event = event_emit(
            type=EventType.INVOICE_PAID, payload={"n": 3}, customer_id=direct_customer.pk
        )
        no_customer_event = event_emit(type=EventType.INVOICE_PAID, payload={"n": 4})

    pairs = set(WebhookDelivery.objects.values_list("event_id", "endpoint_id"))
    assert pairs == {
        (acme_event.pk, acme_endpoint.pk),
        (acme_event.pk, platform_endpoint.pk),
        (globex_event.pk, platform_endpoint.pk),
        (direct_event.pk, platform_endpoint.pk),
        (no_customer_event.pk, platform_endpoint.pk),
    }
    assert len(receiver.requests) == 5


def test_bulk_emission_costs_the_same_number_of_queries_for_one_event_or_fifty(
    make_endpoint: Callable[..., WebhookEndpoint],
    make_partner: Callable[..., Partner],
    make_customer: Callable[..., Customer],
    django_assert_num_queries: Any,
) -> None:
    acme = make_partner("acme")
    customers = [make_customer(partner=acme) for _ in range(5)]
    make_endpoint(partner=acme, enabled_events=["subscription.renewed"])
    make_endpoint(enabled_events=["subscription.*"])

    def specs(count: int) -> list[EventSpec]:
        return [
            EventSpec(
                type=EventType.SUBSCRIPTION_RENEWED,
                payload={"n": n},
                customer_id=customers[n % 5].pk,
            )
            for n in range(count)
        ]

    # The clock, the events, the endpoints, the partner reach, the deliveries.
    with django_assert_num_queries(5):
        event_emit_bulk(events=specs(1))
    with django_assert_num_queries(5):
        events = event_emit_bulk(events=specs(50))

    assert len(events) == 50
    assert OutboxEvent.objects.filter(type=EventType.SUBSCRIPTION_RENEWED).count() == 51
    assert WebhookDelivery.objects.count() == 2 * 51


def test_a_deactivated_partners_endpoint_gets_nothing(
    make_endpoint: Callable[..., WebhookEndpoint],
    make_partner: Callable[..., Partner],
    make_customer: Callable[..., Customer],
    receiver: Receiver,
) -> None:
    acme = make_partner("acme")
    customer = make_customer(partner=acme)
    endpoint = make_endpoint(partner=acme)
    waiting = WebhookDelivery.objects.get(
        event=event_emit(type=EventType.INVOICE_PAID, payload={}, customer_id=customer.pk)
    )

    partner_deactivate(partner=acme, actor=STAFF)
    later = event_emit(type=EventType.INVOICE_PAID, payload={}, customer_id=customer.pk)

    assert not WebhookDelivery.objects.filter(event=later).exists()
    assert webhook_deliver(delivery_id=waiting.pk) is None
    waiting.refresh_from_db()
    assert waiting.status == WebhookDelivery.Status.FAILED
    assert waiting.last_error == (
        "The endpoint's partner was deactivated before this delivery succeeded."
    )
    assert receiver.requests == []
    with pytest.raises(ConflictError) as refused:
        webhook_resend(delivery=waiting, actor=STAFF)
    assert refused.value.code == "partner_inactive"
    assert endpoint.status == WebhookEndpoint.Status.ENABLED
