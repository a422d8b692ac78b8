"""Endpoints: their rules, their secret, disabling by hand and after repeated failure (with a
notice by email), and enabling again."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail

from core.errors import ConflictError, ValidationError
from core.models import AuditLog
from core.webhooks.events import EventType
from core.webhooks.models import OutboxEvent, WebhookDelivery, WebhookEndpoint
from core.webhooks.services import (
    event_emit,
    webhook_deliver,
    webhook_endpoint_create,
    webhook_endpoint_disable,
    webhook_endpoint_enable,
    webhook_endpoint_notify_disabled,
    webhook_endpoint_ping,
    webhook_endpoint_roll_secret,
    webhook_endpoint_update,
)
from customers.models import Customer, Partner
from customers.services import partner_deactivate
from tests.conftest import FIXED_NOW
from tests.webhooks.conftest import STAFF, Receiver

pytestmark = pytest.mark.django_db


def _emit(customer_id: int | None = None) -> OutboxEvent:
    return event_emit(
        type=EventType.INVOICE_PAYMENT_FAILED, payload={"id": 1}, customer_id=customer_id
    )


def test_a_new_endpoint_gets_a_secret_and_its_audit_entry_never_shows_it(
    make_endpoint: Callable[..., WebhookEndpoint],
) -> None:
    endpoint = make_endpoint(
        url=" https://hooks.example.com/platform ",
        enabled_events=["invoice.paid", "invoice.*", "invoice.paid"],
        description="  ERP sync ",
    )

    assert endpoint.url == "https://hooks.example.com/platform"
    assert endpoint.enabled_events == ["invoice.*", "invoice.paid"]
    assert endpoint.description == "ERP sync"
    assert endpoint.status == WebhookEndpoint.Status.ENABLED
    assert endpoint.secret.startswith("whsec_")
    assert len(endpoint.secret) >= 6 + 43
    assert endpoint.created_at == FIXED_NOW
    other = make_endpoint()
    assert other.secret != endpoint.secret
    entry = AuditLog.objects.get(action="webhook_endpoint.create", object_id=str(endpoint.pk))
    assert entry.after is not None
    assert entry.after["secret"].startswith("sha256:")
    assert endpoint.secret not in str(entry.after)


def test_a_wildcard_among_types_means_everything(
    make_endpoint: Callable[..., WebhookEndpoint],
) -> None:
    endpoint = make_endpoint(enabled_events=["invoice.paid", "*"])

    assert endpoint.enabled_events == ["*"]


@pytest.mark.parametrize(
    ("fields", "code", "param"),
    [
        ({"url": "ftp://example.com/x"}, "invalid_url", "url"),
        ({"url": "not a url"}, "invalid_url", "url"),
        ({"url": "https://user:pass@example.com/x"}, "invalid_url", "url"),
        ({"url": ""}, "invalid_url", "url"),
        ({"enabled_events": []}, "invalid_enabled_events", "enabled_events"),
        ({"enabled_events": "invoice.paid"}, "invalid_enabled_events", "enabled_events"),
        (
            {"enabled_events": ["invoice.paid", "invoice.exploded"]},
            "unknown_event_type",
            "enabled_events[1]",
        ),
        ({"enabled_events": ["ping"]}, "unknown_event_type", "enabled_events[0]"),
        ({"enabled_events": ["nothing.*"]}, "unknown_event_type", "enabled_events[0]"),
        ({"description": "x" * 501}, "too_long", "description"),
    ],
)
def test_invalid_endpoints_are_refused(
    clock: Any, fields: dict[str, Any], code: str, param: str
) -> None:
    values: dict[str, Any] = {"url": "https://example.com/hooks", "enabled_events": ["*"]}
    values.update(fields)

    with pytest.raises(ValidationError) as refused:
        webhook_endpoint_create(actor=STAFF, **values)

    assert (refused.value.code, refused.value.param) == (code, param)
    assert not WebhookEndpoint.objects.exists()
    assert not AuditLog.objects.filter(action="webhook_endpoint.create").exists()


def test_outside_development_only_https_or_localhost_is_accepted(clock: Any, settings: Any) -> None:
    settings.TEST_MODE = False
    settings.DEBUG = False

    with pytest.raises(ValidationError) as refused:
        webhook_endpoint_create(url="http://hooks.example.com/x", enabled_events=["*"], actor=STAFF)

    assert refused.value.code == "https_required"
    for url in ("https://hooks.example.com/x", "http://localhost:8080/x", "http://127.0.0.1/x"):
        assert webhook_endpoint_create(url=url, enabled_events=["*"], actor=STAFF).url == url


def test_a_partner_endpoint_needs_an_active_partner_and_keeps_its_partner(
    make_endpoint: Callable[..., WebhookEndpoint],
    make_partner: Callable[..., Partner],
) -> None:
    acme, globex = make_partner("acme"), make_partner("globex")
    endpoint = make_endpoint(partner=acme)
    globex = partner_deactivate(partner=globex, actor=STAFF)

    with pytest.raises(ValidationError) as inactive:
        make_endpoint(partner=globex)

    assert inactive.value.code == "partner_inactive"
    assert endpoint.partner == acme


def test_an_update_changes_the_given_fields_and_is_audited(
    make_endpoint: Callable[..., WebhookEndpoint], clock: Callable[..., Any]
) -> None:
    endpoint = make_endpoint(enabled_events=["invoice.paid"])
    clock(FIXED_NOW + timedelta(hours=1))

    updated = webhook_endpoint_update(
        endpoint=endpoint, enabled_events=["payment.*"], description="payments", actor=STAFF
    )

    assert updated.enabled_events == ["payment.*"]
    assert updated.description == "payments"
    assert updated.url == endpoint.url
    assert updated.updated_at == FIXED_NOW + timedelta(hours=1)
    entry = AuditLog.objects.get(action="webhook_endpoint.update")
    assert entry.before is not None
    assert entry.after is not None
    assert (entry.before["enabled_events"], entry.after["enabled_events"]) == (
        ["invoice.paid"],
        ["payment.*"],
    )
    # Nothing to change: no write, no entry.
    webhook_endpoint_update(endpoint=updated, description="payments", actor=STAFF)
    assert AuditLog.objects.filter(action="webhook_endpoint.update").count() == 1


def test_rolling_the_secret_replaces_it_and_the_audit_shows_only_fingerprints(
    make_endpoint: Callable[..., WebhookEndpoint],
) -> None:
    endpoint = make_endpoint()
    old = endpoint.secret

    rolled = webhook_endpoint_roll_secret(endpoint=endpoint, actor=STAFF)

    assert rolled.secret != old
    assert rolled.secret.startswith("whsec_")
    assert rolled.previous_secret == ""
    assert rolled.previous_secret_expires_at is None
    entry = AuditLog.objects.get(action="webhook_endpoint.roll_secret")
    assert entry.before is not None
    assert entry.after is not None
    assert entry.before["secret"] != entry.after["secret"]
    assert old not in str(entry.before)
    assert rolled.secret not in str(entry.after)
    with pytest.raises(ValidationError) as too_long:
        webhook_endpoint_roll_secret(
            endpoint=rolled, keep_previous_for=timedelta(hours=25), actor=STAFF
        )
    assert too_long.value.code == "invalid_grace_period"


def test_disabling_fails_the_waiting_deliveries_and_new_events_skip_the_endpoint(
    make_endpoint: Callable[..., WebhookEndpoint], receiver: Receiver
) -> None:
    endpoint = make_endpoint()
    waiting = WebhookDelivery.objects.get(event=_emit())

    disabled = webhook_endpoint_disable(endpoint=endpoint, reason="Migrating", actor=STAFF)
    later = _emit()

    assert disabled.status == WebhookEndpoint.Status.DISABLED
    assert disabled.disabled_reason == "Migrating"
    assert disabled.disabled_at == FIXED_NOW
    waiting.refresh_from_db()
    assert waiting.status == WebhookDelivery.Status.FAILED
    assert waiting.next_attempt_at is None
    assert not WebhookDelivery.objects.filter(event=later).exists()
    assert webhook_deliver(delivery_id=waiting.pk) is None
    assert receiver.requests == []
    with pytest.raises(ConflictError) as refused:
        webhook_endpoint_ping(endpoint=disabled, actor=STAFF)
    assert refused.value.code == "endpoint_disabled"
    assert mail.outbox == []  # disabled by hand: nobody needs telling


def test_a_delivery_claimed_after_its_endpoint_was_disabled_is_failed_unsent(
    make_endpoint: Callable[..., WebhookEndpoint], receiver: Receiver
) -> None:
    endpoint = make_endpoint()
    delivery = WebhookDelivery.objects.get(event=_emit())
    # Disabled behind the service's back (say, a concurrent transaction that did not see it).
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        status=WebhookEndpoint.Status.DISABLED, disabled_at=FIXED_NOW
    )

    assert webhook_deliver(delivery_id=delivery.pk) is None

    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.FAILED
    assert receiver.requests == []


def test_an_endpoint_failing_for_long_enough_is_disabled_and_its_owners_are_told_once(
    make_endpoint: Callable[..., WebhookEndpoint],
    make_partner: Callable[..., Partner],
    make_customer: Callable[..., Customer],
    receiver: Receiver,
    clock: Callable[..., Any],
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.WEBHOOK_DISABLE_AFTER_FAILURES = 3
    settings.WEBHOOK_DISABLE_AFTER_HOURS = 24
    acme = make_partner("acme")
    customer = make_customer(partner=acme)
    endpoint = make_endpoint(partner=acme, enabled_events=["*"])
    receiver.respond(*[500] * 10)

    # Three failures within the hour: a short outage, the endpoint stays enabled.
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(3):
            (delivery,) = _deliveries_to(endpoint, count=1, customer_id=customer.pk)
            webhook_deliver(delivery_id=delivery.pk)
    endpoint.refresh_from_db()
    assert endpoint.status == WebhookEndpoint.Status.ENABLED
    assert endpoint.consecutive_failures == 3
    assert endpoint.failing_since == FIXED_NOW
    assert mail.outbox == []

    # Still failing a day later: disabled, its waiting deliveries failed, the owners told.
    clock(FIXED_NOW + timedelta(hours=24))
    with django_capture_on_commit_callbacks(execute=True):
        (delivery,) = _deliveries_to(endpoint, count=1, customer_id=customer.pk)
        webhook_deliver(delivery_id=delivery.pk)

    endpoint.refresh_from_db()
    assert endpoint.status == WebhookEndpoint.Status.DISABLED
    assert endpoint.disabled_at == FIXED_NOW + timedelta(hours=24)
    assert endpoint.disabled_reason == (
        "Disabled automatically after 4 failed attempts in a row since 2026-01-15 12:00 UTC."
    )
    assert endpoint.disabled_notice_sent_at == FIXED_NOW + timedelta(hours=24)
    assert not WebhookDelivery.objects.filter(
        endpoint=endpoint, status__in=["pending", "retrying"]
    ).exists()
    assert WebhookDelivery.objects.filter(endpoint=endpoint, status="failed").count() == 4
    (notice,) = mail.outbox
    assert notice.to == ["hooks@acme.example", "ops@example.com"]
    assert notice.subject == f"Webhook endpoint disabled: {endpoint.url}"
    assert "failed 4 delivery attempts in a row" in notice.body
    assert f"/api/v1/webhook_endpoints/{endpoint.pk}/enable" in notice.body
    html, mimetype = notice.alternatives[0]  # type: ignore[attr-defined]
    assert mimetype == "text/html"
    assert endpoint.url in html
    entry = AuditLog.objects.get(action="webhook_endpoint.disable")
    assert entry.actor_type == "system"
    # The notice task run again (a redelivered message) sends nothing more.
    assert webhook_endpoint_notify_disabled(endpoint_id=endpoint.pk) is False
    assert len(mail.outbox) == 1
    # Events that follow are not even queued for it.
    _emit(customer.pk)
    assert WebhookDelivery.objects.filter(endpoint=endpoint).count() == 4


def _deliveries_to(
    endpoint: WebhookEndpoint, *, count: int, customer_id: int | None = None
) -> list[WebhookDelivery]:
    events = [_emit(customer_id) for _ in range(count)]
    return list(WebhookDelivery.objects.filter(endpoint=endpoint, event__in=events))


def test_a_success_ends_the_failure_streak(
    make_endpoint: Callable[..., WebhookEndpoint],
    receiver: Receiver,
    clock: Callable[..., Any],
    settings: Any,
) -> None:
    settings.WEBHOOK_DISABLE_AFTER_FAILURES = 3
    settings.WEBHOOK_DISABLE_AFTER_HOURS = 0
    endpoint = make_endpoint()
    receiver.respond(500, 500, 200, 500, 500)

    for _ in range(5):
        (delivery,) = _deliveries_to(endpoint, count=1)
        webhook_deliver(delivery_id=delivery.pk)

    endpoint.refresh_from_db()
    assert endpoint.status == WebhookEndpoint.Status.ENABLED
    assert endpoint.consecutive_failures == 2
    assert endpoint.failing_since == FIXED_NOW


def test_enabling_again_starts_from_a_clean_record(
    make_endpoint: Callable[..., WebhookEndpoint],
    receiver: Receiver,
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.WEBHOOK_DISABLE_AFTER_FAILURES = 1
    settings.WEBHOOK_DISABLE_AFTER_HOURS = 0
    endpoint = make_endpoint()
    receiver.respond(500)
    with django_capture_on_commit_callbacks(execute=True):
        (delivery,) = _deliveries_to(endpoint, count=1)
        webhook_deliver(delivery_id=delivery.pk)
    endpoint.refresh_from_db()
    assert endpoint.status == WebhookEndpoint.Status.DISABLED

    enabled = webhook_endpoint_enable(endpoint=endpoint, actor=STAFF)

    assert enabled.status == WebhookEndpoint.Status.ENABLED
    assert enabled.disabled_at is None
    assert enabled.disabled_reason == ""
    assert enabled.disabled_notice_sent_at is None
    assert enabled.consecutive_failures == 0
    assert enabled.failing_since is None
    assert WebhookDelivery.objects.get(pk=delivery.pk).status == WebhookDelivery.Status.FAILED
    assert len(_deliveries_to(enabled, count=1)) == 1
    # Enabling an enabled endpoint is a no-op.
    webhook_endpoint_enable(endpoint=enabled, actor=STAFF)
    assert AuditLog.objects.filter(action="webhook_endpoint.enable").count() == 1


def test_nobody_to_tell_is_logged_and_nothing_is_sent(
    make_endpoint: Callable[..., WebhookEndpoint],
    settings: Any,
    caplog: Any,
) -> None:
    settings.WEBHOOK_ALERT_EMAILS = []
    endpoint = webhook_endpoint_disable(endpoint=make_endpoint(), actor=STAFF)

    assert webhook_endpoint_notify_disabled(endpoint_id=endpoint.pk) is False

    assert mail.outbox == []
    assert "nobody to tell" in caplog.text


def test_a_ping_goes_to_its_endpoint_only(
    make_endpoint: Callable[..., WebhookEndpoint],
    receiver: Receiver,
    django_capture_on_commit_callbacks: Any,
) -> None:
    endpoint = make_endpoint()
    other = make_endpoint()

    with django_capture_on_commit_callbacks(execute=True):
        delivery = webhook_endpoint_ping(endpoint=endpoint, actor=STAFF)

    assert delivery.endpoint == endpoint
    assert not WebhookDelivery.objects.filter(endpoint=other).exists()
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.SUCCEEDED
    assert delivery.event.type == "ping"
    assert delivery.event.payload == {
        "endpoint_id": endpoint.pk,
        "message": "Ping from the subscription platform.",
    }
    assert len(receiver.requests) == 1
