"""Writes of the outbox and of outbound webhooks.

Emitting: `event_emit` (and `event_emit_bulk` for the billing run) writes the event and one
delivery per subscribed, enabled endpoint inside the caller's transaction, and queues the
deliveries with `transaction.on_commit`: a rolled-back change leaves no event and sends nothing.

Delivering: `webhook_deliver` claims a delivery in a short transaction (so two workers never send
it at once), makes the HTTP request outside any transaction, then records the attempt and its
consequences (success, the next retry, abandonment, disabling the endpoint) in another.

Clocks: every stored time reads the platform clock, so retries follow a test clock in TEST_MODE;
the signature's timestamp is the real time (`time.time()`), because receivers check its freshness
against their own clock; `dispatched_at` and `claimed_until` are wall-clock leases against lost
tasks and dead workers.

Events and deliveries are their own log, so emitting and delivering write no audit entries;
changes to endpoints and manual resends do.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import socket
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson
import requests
from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.mail import EmailMultiAlternatives
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import URLValidator
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone

from core import clock
from core.actors import SYSTEM, Actor
from core.bulk import JSONText, insert_values
from core.errors import ConflictError, ValidationError
from core.services import audit_record, audit_snapshot
from core.webhooks.events import EVENT_TYPES, PING, SUBSCRIBABLE, WILDCARD, subscribes_to
from core.webhooks.models import (
    EVENT_ID_PREFIX,
    SECRET_PREFIX,
    OutboxEvent,
    WebhookDelivery,
    WebhookDeliveryAttempt,
    WebhookEndpoint,
)

if TYPE_CHECKING:
    from customers.models import Partner

logger = logging.getLogger(__name__)


class _Unset:
    """Marks an argument that was not given."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()

USER_AGENT = "SubscriptionPlatform-Webhooks/1.0"
SIGNATURE_HEADER = "Webhook-Signature"
RESPONSE_EXCERPT_BYTES = 2048
ERROR_MAX_LENGTH = 1000
DESCRIPTION_MAX_LENGTH = 500
URL_MAX_LENGTH = 2000
MAX_PREVIOUS_SECRET_GRACE = timedelta(hours=24)
# A claim outlives the request's own timeout by this much before another worker may take over.
_CLAIM_MARGIN = timedelta(seconds=60)
_OPEN = (WebhookDelivery.Status.PENDING, WebhookDelivery.Status.RETRYING)
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


# --- endpoints --------------------------------------------------------------------------------


def webhook_endpoint_clean_input(
    values: dict[str, Any], *, current: WebhookEndpoint | None
) -> dict[str, Any]:
    """The endpoint fields in `values`, normalized; the service's rules, for the API and admin."""
    cleaned: dict[str, Any] = {}
    if "url" in values or current is None:
        cleaned["url"] = _clean_url(values.get("url"))
    if "enabled_events" in values or current is None:
        cleaned["enabled_events"] = _clean_enabled_events(values.get("enabled_events"))
    if "description" in values:
        cleaned["description"] = _clean_description(values["description"])
    if "partner" in values:
        partner = values["partner"]
        if current is not None and partner != current.partner:
            raise ValidationError(
                "An endpoint's partner is set when it is created; create another endpoint.",
                code="partner_immutable",
                param="partner",
            )
        if partner is not None and not partner.active:
            raise ValidationError(
                "This partner is inactive.", code="partner_inactive", param="partner"
            )
        cleaned["partner"] = partner
    return cleaned


def webhook_endpoint_create(
    *,
    url: str,
    enabled_events: Sequence[str],
    actor: Actor,
    description: str = "",
    partner: Partner | None = None,
) -> WebhookEndpoint:
    """Create an enabled endpoint with a new signing secret (`endpoint.secret`: show it now)."""
    values = webhook_endpoint_clean_input(
        {
            "url": url,
            "enabled_events": enabled_events,
            "description": description,
            "partner": partner,
        },
        current=None,
    )
    now = clock.now()
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.create(
            **values, secret=_new_secret(), created_at=now, updated_at=now
        )
        audit_record(
            actor=actor,
            action="webhook_endpoint.create",
            instance=endpoint,
            after=_endpoint_snapshot(endpoint),
        )
    return endpoint


def webhook_endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    actor: Actor,
    url: str = UNSET,
    description: str = UNSET,
    enabled_events: Sequence[str] = UNSET,
) -> WebhookEndpoint:
    given = {
        field: value
        for field, value in {
            "url": url,
            "description": description,
            "enabled_events": enabled_events,
        }.items()
        if value is not UNSET
    }
    with transaction.atomic():
        locked = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        changes = webhook_endpoint_clean_input(given, current=locked)
        changes = {f: v for f, v in changes.items() if getattr(locked, f) != v}
        if not changes:
            return locked
        before = _endpoint_snapshot(locked)
        for field, value in changes.items():
            setattr(locked, field, value)
        locked.updated_at = clock.now()
        locked.save(update_fields=[*changes, "updated_at"])
        audit_record(
            actor=actor,
            action="webhook_endpoint.update",
            instance=locked,
            before=before,
            after=_endpoint_snapshot(locked),
        )
    return locked


def webhook_endpoint_disable(
    *, endpoint: WebhookEndpoint, actor: Actor, reason: str = ""
) -> WebhookEndpoint:
    """Stop sending to an endpoint. Its deliveries still waiting are marked failed (they can be
    resent once it is enabled again). Disabling a disabled endpoint changes nothing."""
    reason = (
        _clean_description(reason, param="reason") or f"Disabled by {actor.label or actor.type}."
    )
    with transaction.atomic():
        locked = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        if locked.status == WebhookEndpoint.Status.DISABLED:
            return locked
        before = _endpoint_snapshot(locked)
        _disable(locked, reason=reason, now=clock.now())
        audit_record(
            actor=actor,
            action="webhook_endpoint.disable",
            instance=locked,
            before=before,
            after=_endpoint_snapshot(locked),
        )
    return locked


def webhook_endpoint_enable(*, endpoint: WebhookEndpoint, actor: Actor) -> WebhookEndpoint:
    """Send to the endpoint again, with a clean failure record. Deliveries that failed while it
    was disabled stay failed until resent."""
    with transaction.atomic():
        locked = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        if locked.status == WebhookEndpoint.Status.ENABLED:
            return locked
        before = _endpoint_snapshot(locked)
        locked.status = WebhookEndpoint.Status.ENABLED
        locked.disabled_at = None
        locked.disabled_reason = ""
        locked.disabled_notice_sent_at = None
        locked.consecutive_failures = 0
        locked.failing_since = None
        locked.updated_at = clock.now()
        locked.save()
        audit_record(
            actor=actor,
            action="webhook_endpoint.enable",
            instance=locked,
            before=before,
            after=_endpoint_snapshot(locked),
        )
    return locked


def webhook_endpoint_roll_secret(
    *, endpoint: WebhookEndpoint, actor: Actor, keep_previous_for: timedelta = timedelta(0)
) -> WebhookEndpoint:
    """Replace the signing secret (`endpoint.secret` is the new one: show it now).

    With `keep_previous_for` (up to 24 hours) requests carry a second `v1` signature made with
    the old secret until then, so the receiver can switch secrets without rejecting anything.
    """
    if not timedelta(0) <= keep_previous_for <= MAX_PREVIOUS_SECRET_GRACE:
        raise ValidationError(
            "The old secret can be kept for 0 to 24 hours.",
            code="invalid_grace_period",
            param="keep_previous_hours",
        )
    with transaction.atomic():
        locked = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        before = _endpoint_snapshot(locked)
        now = clock.now()
        if keep_previous_for:
            locked.previous_secret = locked.secret
            locked.previous_secret_expires_at = now + keep_previous_for
        else:
            locked.previous_secret = ""
            locked.previous_secret_expires_at = None
        locked.secret = _new_secret()
        locked.updated_at = now
        locked.save()
        audit_record(
            actor=actor,
            action="webhook_endpoint.roll_secret",
            instance=locked,
            before=before,
            after=_endpoint_snapshot(locked),
        )
    return locked


def webhook_endpoint_ping(*, endpoint: WebhookEndpoint, actor: Actor) -> WebhookDelivery:
    """Send a `ping` event to this endpoint only, to check the URL and the signature."""
    with transaction.atomic():
        locked = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        _require_enabled(locked)
        now = clock.now()
        event = OutboxEvent.objects.create(
            public_id=_new_event_id(),
            type=PING,
            payload={"endpoint_id": locked.pk, "message": "Ping from the subscription platform."},
            created_at=now,
        )
        delivery = WebhookDelivery.objects.create(
            event=event,
            endpoint=locked,
            next_attempt_at=now,
            # Wall clock: a lost task is noticed by real elapsed time, even under a test clock.
            dispatched_at=timezone.now(),
            created_at=now,
            updated_at=now,
        )
        audit_record(actor=actor, action="webhook_endpoint.ping", instance=locked)
        _dispatch_on_commit([delivery.pk])
    return delivery


# --- the outbox -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventSpec:
    """One event to emit: its type (an `EventType`), the resource snapshot, its customer."""

    type: str
    payload: Mapping[str, Any]
    customer_id: int | None = None


def event_emit(
    *, type: str, payload: Mapping[str, Any], customer_id: int | None = None
) -> OutboxEvent:
    """Record an event in the caller's transaction and queue it for the subscribed endpoints.

    Call it inside the transaction that makes the change (the outbox pattern): the event and
    its deliveries commit or roll back with the change, and the deliveries are queued only
    after the commit. `payload` is the resource as the API shows it (Decimals, dates and UUIDs
    become strings); `customer_id` names the customer the event concerns, which decides what a
    partner's endpoints receive.
    """
    now, rows, (pk,) = _events_write(
        [EventSpec(type=type, payload=payload, customer_id=customer_id)]
    )
    ((public_id, event_type, encoded, event_customer_id, _),) = rows
    event = OutboxEvent(
        pk=pk,
        public_id=public_id,
        type=event_type,
        payload=json.loads(encoded.encoded),
        customer_id=event_customer_id,
        created_at=now,
    )
    event._state.adding = False
    return event


def event_emit_bulk(*, events: Sequence[EventSpec]) -> list[int]:
    """`event_emit` for many events at once: a constant number of queries, whatever the count.
    Returns the events' ids, in order (no `OutboxEvent` each: the billing run reads none)."""
    if not events:
        return []
    return _events_write(events)[2]


# An event's row: public_id, type, payload, customer_id, created_at.
_EventRow = tuple[str, str, JSONText, int | None, str]
_EVENT_COLUMNS = ("public_id", "type", "payload", "customer_id", "created_at")


def _events_write(events: Sequence[EventSpec]) -> tuple[datetime, list[_EventRow], list[int]]:
    now = clock.now()
    created_at = now.isoformat()
    rows = [
        (
            _new_event_id(),
            _clean_event_type(spec.type),
            _clean_payload(spec.payload),
            _clean_customer_id(spec.customer_id),
            created_at,
        )
        for spec in events
    ]
    # No savepoint: the events belong to the caller's transaction, and a failure here must fail
    # the caller's change too.
    with transaction.atomic(savepoint=False):
        pks = insert_values(OutboxEvent, _EVENT_COLUMNS, rows, returning=True)
        deliveries = WebhookDelivery.objects.bulk_create(
            _deliveries_for(
                [(pk, row[1], row[3]) for pk, row in zip(pks, rows, strict=True)], now=now
            )
        )
        _dispatch_on_commit([delivery.pk for delivery in deliveries])
    return now, rows, pks


def webhook_events_prune(*, batch: int = 5_000, max_batches: int = 200) -> int:
    """Delete the outbox events older than WEBHOOK_EVENT_RETENTION_DAYS (platform clock) whose
    deliveries are all settled, with their deliveries and attempts; returns how many.

    An event with a delivery still pending or retrying is kept until it settles. Deleted in
    batches (oldest first), each its own transaction, so a backlog never holds one long lock.
    """
    cutoff = clock.now() - timedelta(days=settings.WEBHOOK_EVENT_RETENTION_DAYS)
    waiting = WebhookDelivery.objects.filter(status__in=_OPEN).values("event_id")
    prunable = (
        OutboxEvent.objects.filter(created_at__lt=cutoff)
        .exclude(pk__in=waiting)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    pruned = 0
    for _ in range(max_batches):
        with transaction.atomic():
            ids = list(prunable[:batch])
            if not ids:
                break
            WebhookDeliveryAttempt.objects.filter(delivery__event_id__in=ids).delete()
            WebhookDelivery.objects.filter(event_id__in=ids).delete()
            OutboxEvent.objects.filter(pk__in=ids).delete()
        pruned += len(ids)
    return pruned


def event_body(event: OutboxEvent) -> bytes:
    """The request body of an event: the bytes that are signed and sent, the same every time."""
    document = {
        "id": event.public_id,
        "type": event.type,
        "created": int(event.created_at.timestamp()),
        "data": event.payload,
    }
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def webhook_signature(*, secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of `<timestamp>.<body>` keyed with the whole secret (`whsec_...`)."""
    signed = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def webhook_signature_header(*, secrets: Sequence[str], timestamp: int, body: bytes) -> str:
    """`t=<timestamp>,v1=<signature>[,v1=<signature with the previous secret>]`."""
    signatures = [
        f"v1={webhook_signature(secret=secret, timestamp=timestamp, body=body)}"
        for secret in secrets
    ]
    return ",".join([f"t={timestamp}", *signatures])


# --- delivering -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Claim:
    delivery_id: int
    endpoint_id: int
    token: uuid.UUID
    url: str
    event_id: str
    secrets: tuple[str, ...]
    body: bytes


@dataclass(frozen=True, slots=True)
class _Outcome:
    status: int | None
    excerpt: str
    error: str
    duration_ms: int

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def webhook_deliver(*, delivery_id: int) -> WebhookDelivery | None:
    """Make the next attempt of a delivery, if it is due and no other worker is making it.

    Returns the delivery as the attempt left it, or None when there was nothing to send (not
    due, already sent, claimed by another worker, or its endpoint is disabled). Never call it
    inside a transaction: the HTTP request must not hold database locks while it waits.
    """
    claim = _delivery_claim(delivery_id)
    if claim is None:
        return None
    # Real time, not the platform clock: receivers reject signatures that are not fresh.
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Webhook-Id": claim.event_id,
        "Webhook-Timestamp": str(timestamp),
        SIGNATURE_HEADER: webhook_signature_header(
            secrets=claim.secrets, timestamp=timestamp, body=claim.body
        ),
    }
    outcome = _post(claim.url, body=claim.body, headers=headers)
    return _delivery_record(claim, headers=headers, outcome=outcome)


def webhook_dispatch_due(*, limit: int = 500) -> list[int]:
    """Queue a task for each delivery whose attempt is due and whose task is not on its way.

    Retries wait here until their `next_attempt_at`; a first attempt whose task was lost (the
    broker restarted, the enqueue failed after commit) is queued again once its task is
    WEBHOOK_REDISPATCH_AFTER_SECONDS late. Queuing one twice is harmless: the claim lets only
    one worker send it. Returns the ids queued, at most `limit`.
    """
    now = clock.now()
    wall = timezone.now()
    late = wall - timedelta(seconds=settings.WEBHOOK_REDISPATCH_AFTER_SECONDS)
    with transaction.atomic(durable=True):
        ids = list(
            WebhookDelivery.objects.select_for_update(skip_locked=True)
            .filter(status__in=_OPEN, next_attempt_at__lte=now)
            .filter(Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=late))
            .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lte=wall))
            .order_by("next_attempt_at", "id")
            .values_list("id", flat=True)[:limit]
        )
        WebhookDelivery.objects.filter(id__in=ids).update(dispatched_at=wall)
        _dispatch_on_commit(ids)
    return ids


def webhook_resend(
    *,
    actor: Actor,
    delivery: WebhookDelivery | None = None,
    event: OutboxEvent | None = None,
    endpoint: WebhookEndpoint | None = None,
) -> WebhookDelivery:
    """Send a delivery again now, or an event to an endpoint (creating the delivery if the
    endpoint never had it). The retry schedule starts over for it.

    A partner's endpoint can only be sent events about the partner's customers; a disabled
    endpoint nothing; a delivery being sent right now is left to finish.
    """
    if delivery is not None and (event is not None or endpoint is not None):
        raise ValidationError(
            "Resend a delivery, or an event to an endpoint, not both.", code="invalid_resend"
        )
    now = clock.now()
    wall = timezone.now()
    with transaction.atomic():
        if delivery is None:
            if event is None or endpoint is None:
                raise ValidationError(
                    "Resend a delivery, or an event to an endpoint.", code="invalid_resend"
                )
            _require_receivable(event, endpoint)
            delivery, _ = WebhookDelivery.objects.get_or_create(
                event=event,
                endpoint=endpoint,
                defaults={
                    "status": WebhookDelivery.Status.FAILED,
                    "created_at": now,
                    "updated_at": now,
                },
            )
        locked = (
            WebhookDelivery.objects.select_for_update(of=("self",))
            .select_related("endpoint__partner", "event")
            .get(pk=delivery.pk)
        )
        _require_enabled(locked.endpoint)
        if locked.claimed_until is not None and locked.claimed_until > wall:
            raise ConflictError(
                "This delivery is being sent right now; resend it when the attempt is logged.",
                code="delivery_in_progress",
            )
        before = audit_snapshot(locked)
        locked.status = WebhookDelivery.Status.PENDING
        locked.next_attempt_at = now
        locked.round_start_attempt = locked.attempt_count
        locked.dispatched_at = wall
        locked.succeeded_at = None
        locked.updated_at = now
        locked.save()
        audit_record(
            actor=actor,
            action="webhook_delivery.resend",
            instance=locked,
            before=before,
            after=audit_snapshot(locked),
        )
        _dispatch_on_commit([locked.pk])
    return locked


def webhook_endpoint_notify_disabled(*, endpoint_id: int) -> bool:
    """Email that an endpoint was disabled for failing, once per disabling. True if sent.

    Recipients: the partner's contact for a partner's endpoint, and WEBHOOK_ALERT_EMAILS.
    """
    with transaction.atomic():
        endpoint = (
            WebhookEndpoint.objects.select_for_update(of=("self",))
            .select_related("partner")
            .filter(pk=endpoint_id)
            .first()
        )
        if (
            endpoint is None
            or endpoint.status != WebhookEndpoint.Status.DISABLED
            or endpoint.disabled_notice_sent_at is not None
        ):
            return False
        recipients = list(dict.fromkeys(settings.WEBHOOK_ALERT_EMAILS))
        if endpoint.partner is not None and endpoint.partner.contact_email:
            recipients.insert(0, endpoint.partner.contact_email)
        if not recipients:
            logger.warning(
                "Webhook endpoint %s was disabled; nobody to tell (set WEBHOOK_ALERT_EMAILS).",
                endpoint.pk,
            )
            return False
        context = {"endpoint": endpoint, "partner": endpoint.partner}
        message = EmailMultiAlternatives(
            subject=f"Webhook endpoint disabled: {endpoint.url}",
            body=render_to_string("emails/webhook_endpoint_disabled.txt", context),
            to=recipients,
        )
        message.attach_alternative(
            render_to_string("emails/webhook_endpoint_disabled.html", context), "text/html"
        )
        # Sent inside the transaction: if the mail server refuses, nothing is marked and the
        # task's retry sends it again.
        message.send()
        endpoint.disabled_notice_sent_at = clock.now()
        endpoint.save(update_fields=["disabled_notice_sent_at"])
    return True


# --- internals --------------------------------------------------------------------------------


def _new_secret() -> str:
    return f"{SECRET_PREFIX}{secrets.token_urlsafe(32)}"


def _new_event_id() -> str:
    return f"{EVENT_ID_PREFIX}{uuid.uuid4().hex}"


def _endpoint_snapshot(endpoint: WebhookEndpoint) -> dict[str, Any]:
    """The audit picture of an endpoint: secrets appear as a fingerprint, never in clear."""
    snapshot = audit_snapshot(endpoint)
    for field in ("secret", "previous_secret"):
        if snapshot.get(field):
            digest = hashlib.sha256(str(snapshot[field]).encode()).hexdigest()
            snapshot[field] = f"sha256:{digest[:12]}"
    return snapshot


def _clean_url(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("Give the endpoint's URL.", code="invalid_url", param="url")
    url = value.strip()
    if len(url) > URL_MAX_LENGTH:
        raise ValidationError(
            f"A URL has at most {URL_MAX_LENGTH} characters.", code="invalid_url", param="url"
        )
    try:
        URLValidator(schemes=["http", "https"])(url)
    except DjangoValidationError:
        raise ValidationError(
            "Give a full http(s) URL, for example https://example.com/webhooks.",
            code="invalid_url",
            param="url",
        ) from None
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        raise ValidationError(
            "Credentials do not belong in the URL (it appears in logs); verify the signature "
            "instead.",
            code="invalid_url",
            param="url",
        )
    local = (parts.hostname or "") in _LOCAL_HOSTS or (parts.hostname or "").endswith(".localhost")
    if parts.scheme != "https" and not (settings.DEBUG or settings.TEST_MODE or local):
        raise ValidationError(
            "Webhook endpoints must use https.", code="https_required", param="url"
        )
    private = _non_public_address(parts.hostname or "")
    if private is not None:
        raise ValidationError(
            f"{parts.hostname} is or resolves to a non-public address ({private}): webhooks are "
            "sent to public addresses only.",
            code="url_not_public",
            param="url",
        )
    return url


def _non_public_address(host: str) -> str | None:
    """The first private, loopback, link-local, reserved or multicast address `host` is or
    resolves to; None when all are public, when it does not resolve (yet), or when
    WEBHOOK_ALLOW_PRIVATE_ADDRESSES is on."""
    if settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES:
        return None
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError, ValueError):
        return None
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if not address.is_global or address.is_multicast:
            return str(address)
    return None


def _clean_enabled_events(value: object) -> list[str]:
    if not isinstance(value, list | tuple) or not value:
        raise ValidationError(
            'Give the event types to send: a list of types, "<group>.*" or ["*"].',
            code="invalid_enabled_events",
            param="enabled_events",
        )
    for index, item in enumerate(value):
        if not isinstance(item, str) or item not in SUBSCRIBABLE:
            raise ValidationError(
                f"Unknown event type: {item!r}.",
                code="unknown_event_type",
                param=f"enabled_events[{index}]",
            )
    if WILDCARD in value:
        return [WILDCARD]
    return sorted(set(value))


def _clean_description(value: object, *, param: str = "description") -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError("Give a text.", param=param)
    text = value.strip()
    if len(text) > DESCRIPTION_MAX_LENGTH:
        raise ValidationError(
            f"At most {DESCRIPTION_MAX_LENGTH} characters.", code="too_long", param=param
        )
    return text


def _clean_event_type(value: str) -> str:
    if value not in EVENT_TYPES:
        raise ValidationError(
            f"Unknown event type: {value!r} (see core.webhooks.events.EventType).",
            code="unknown_event_type",
            param="type",
        )
    return str(value)


def _clean_payload(value: Mapping[str, Any]) -> JSONText:
    """The payload as JSON, as DjangoJSONEncoder writes it (Decimals, dates, times, durations
    and UUIDs as strings); a ValidationError when it is not an object or not JSON.

    orjson encodes it, calling the encoder's own `default` for what it does not take or must
    not write its way (dates and times); json, slower, settles what orjson refuses: integers
    past 64 bits and keys that are not str, which it takes, and what neither takes, with its
    own words for the error.
    """
    if not isinstance(value, Mapping):
        raise ValidationError("An event's payload is an object.", code="invalid_payload")
    payload = value if type(value) is dict else dict(value)
    try:
        return JSONText(
            orjson.dumps(payload, default=_DJANGO_JSON.default, option=_PAYLOAD_OPTIONS)
        )
    except orjson.JSONEncodeError:
        pass
    try:
        cleaned = json.loads(json.dumps(payload, cls=DjangoJSONEncoder))
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            f"An event's payload must be JSON: {exc}.", code="invalid_payload"
        ) from None
    return JSONText(json.dumps(cleaned, separators=(",", ":"), ensure_ascii=False).encode())


_DJANGO_JSON = DjangoJSONEncoder()
_PAYLOAD_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _clean_customer_id(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(
            "customer_id is a customer's id (an integer).",
            code="invalid_customer_id",
            param="customer_id",
        )
    return value


def _deliveries_for(
    events: Sequence[tuple[int, str, int | None]], *, now: datetime
) -> list[WebhookDelivery]:
    """The deliveries of new events, each given as (id, type, customer_id)."""
    endpoints = list(
        WebhookEndpoint.objects.filter(status=WebhookEndpoint.Status.ENABLED)
        # A deactivated partner's endpoints get nothing, as its API keys can read nothing.
        .filter(Q(partner__isnull=True) | Q(partner__active=True))
        .only("id", "enabled_events", "partner_id")
    )
    if not endpoints:
        return []
    customer_ids = {customer_id for _, _, customer_id in events if customer_id is not None}
    partner_endpoint_ids = [e.pk for e in endpoints if e.partner_id is not None]
    # (endpoint, customer) pairs where the customer belongs to the endpoint's partner.
    reachable: set[tuple[int, int]] = set()
    if customer_ids and partner_endpoint_ids:
        reachable = set(
            WebhookEndpoint.objects.filter(
                pk__in=partner_endpoint_ids, partner__customers__id__in=customer_ids
            ).values_list("id", "partner__customers__id")
        )
    wall = timezone.now()
    return [
        WebhookDelivery(
            event_id=event_id,
            endpoint_id=endpoint.pk,
            next_attempt_at=now,
            dispatched_at=wall,
            created_at=now,
            updated_at=now,
        )
        for event_id, event_type, customer_id in events
        for endpoint in endpoints
        if subscribes_to(endpoint.enabled_events, event_type)
        and (
            endpoint.partner_id is None
            or (customer_id is not None and (endpoint.pk, customer_id) in reachable)
        )
    ]


def _dispatch_on_commit(delivery_ids: list[int]) -> None:
    # Robust: once the change has committed, a broker that is down must not turn the caller's
    # success into an error; the sweeper queues the delivery again (webhook_dispatch_due).
    if delivery_ids:
        transaction.on_commit(partial(_enqueue, list(delivery_ids)), robust=True)


def _enqueue(delivery_ids: list[int]) -> None:
    from core.webhooks.tasks import deliver_webhook

    for delivery_id in delivery_ids:
        deliver_webhook.delay(delivery_id)


def _require_enabled(endpoint: WebhookEndpoint) -> None:
    if endpoint.status != WebhookEndpoint.Status.ENABLED:
        raise ConflictError("This endpoint is disabled; enable it first.", code="endpoint_disabled")
    if endpoint.partner is not None and not endpoint.partner.active:
        raise ConflictError(
            "This endpoint's partner is inactive: nothing is sent to it.", code="partner_inactive"
        )


def _unsendable_reason(endpoint: WebhookEndpoint) -> str:
    if endpoint.status != WebhookEndpoint.Status.ENABLED:
        return "The endpoint was disabled before this delivery succeeded."
    if endpoint.partner is not None and not endpoint.partner.active:
        return "The endpoint's partner was deactivated before this delivery succeeded."
    return ""


def _require_receivable(event: OutboxEvent, endpoint: WebhookEndpoint) -> None:
    if event.type == PING:
        raise ValidationError(
            "A ping belongs to the endpoint it tested; send a new one with the test action.",
            code="event_not_for_endpoint",
            param="event",
        )
    if endpoint.partner_id is not None and (
        event.customer_id is None
        or not WebhookEndpoint.objects.filter(
            pk=endpoint.pk, partner__customers__id=event.customer_id
        ).exists()
    ):
        raise ValidationError(
            "A partner's endpoint receives only events about the partner's customers.",
            code="event_not_for_endpoint",
            param="event",
        )


def _disable(endpoint: WebhookEndpoint, *, reason: str, now: datetime) -> None:
    """Disable a locked endpoint and fail the deliveries still waiting for it."""
    endpoint.status = WebhookEndpoint.Status.DISABLED
    endpoint.disabled_at = now
    endpoint.disabled_reason = reason[:500]
    endpoint.updated_at = now
    endpoint.save()
    WebhookDelivery.objects.filter(endpoint=endpoint, status__in=_OPEN).update(
        status=WebhookDelivery.Status.FAILED,
        next_attempt_at=None,
        claimed_until=None,
        claim_token=None,
        last_error="The endpoint was disabled before this delivery succeeded.",
        updated_at=now,
    )


def _delivery_claim(delivery_id: int) -> _Claim | None:
    now = clock.now()
    wall = timezone.now()
    with transaction.atomic(durable=True):
        # Wait for the lock, never skip: it is held only for a moment (another worker's claim,
        # or a sweeper's scan that locked the row and then left it), and after the wait the
        # filter is checked again on the row as committed, so a claim taken meanwhile wins.
        delivery = (
            WebhookDelivery.objects.select_for_update(of=("self",))
            .select_related("event", "endpoint__partner")
            .filter(pk=delivery_id, status__in=_OPEN, next_attempt_at__lte=now)
            .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lte=wall))
            .first()
        )
        if delivery is None:
            return None
        endpoint = delivery.endpoint
        unsendable = _unsendable_reason(endpoint)
        if unsendable:
            delivery.status = WebhookDelivery.Status.FAILED
            delivery.next_attempt_at = None
            delivery.claimed_until = None
            delivery.claim_token = None
            delivery.last_error = unsendable
            delivery.updated_at = now
            delivery.save()
            return None
        token = uuid.uuid4()
        delivery.claim_token = token
        delivery.claimed_until = (
            wall + timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS) + _CLAIM_MARGIN
        )
        delivery.save(update_fields=["claim_token", "claimed_until"])
        signing = [endpoint.secret]
        if endpoint.previous_secret and (endpoint.previous_secret_expires_at or now) > now:
            signing.append(endpoint.previous_secret)
        return _Claim(
            delivery_id=delivery.pk,
            endpoint_id=endpoint.pk,
            token=token,
            url=endpoint.url,
            event_id=delivery.event.public_id,
            secrets=tuple(signing),
            body=event_body(delivery.event),
        )


def _post(url: str, *, body: bytes, headers: dict[str, str]) -> _Outcome:
    """POST without following redirects (a 3xx is a failure, like any non-2xx)."""
    timeout = settings.WEBHOOK_TIMEOUT_SECONDS
    started = time.monotonic()
    status: int | None = None
    excerpt = b""
    error = ""
    # Checked again now: a public name registered long ago may point inside the network today.
    host = urlsplit(url).hostname or ""
    private = _non_public_address(host)
    if private is not None:
        return _Outcome(
            status=None,
            excerpt="",
            error=f"Not sent: {host} resolves to a non-public address ({private}).",
            duration_ms=0,
        )
    try:
        with requests.post(
            url, data=body, headers=headers, timeout=timeout, allow_redirects=False, stream=True
        ) as response:
            status = response.status_code
            for chunk in response.iter_content(chunk_size=RESPONSE_EXCERPT_BYTES):
                excerpt += chunk
                if len(excerpt) >= RESPONSE_EXCERPT_BYTES:
                    break
    except requests.Timeout:
        error = f"No response within {timeout} seconds."
    except requests.ConnectionError as exc:
        error = f"Connection failed: {exc}"
    except requests.RequestException as exc:
        error = f"Request failed: {exc}"
    duration_ms = round((time.monotonic() - started) * 1000)
    if status is not None and not 200 <= status < 300 and not error:
        error = f"The endpoint answered HTTP {status}."
    return _Outcome(
        status=status,
        excerpt=excerpt[:RESPONSE_EXCERPT_BYTES].decode(errors="replace"),
        error=error[:ERROR_MAX_LENGTH],
        duration_ms=duration_ms,
    )


def _delivery_record(
    claim: _Claim, *, headers: dict[str, str], outcome: _Outcome
) -> WebhookDelivery:
    now = clock.now()
    with transaction.atomic(durable=True):
        # Endpoint before delivery: the order every service that locks both follows.
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=claim.endpoint_id)
        delivery = WebhookDelivery.objects.select_for_update(of=("self",)).get(pk=claim.delivery_id)
        delivery.attempt_count += 1
        WebhookDeliveryAttempt.objects.create(
            delivery=delivery,
            attempt_number=delivery.attempt_count,
            url=claim.url,
            request_headers=headers,
            response_status=outcome.status,
            response_excerpt=outcome.excerpt,
            duration_ms=outcome.duration_ms,
            error=outcome.error,
            succeeded=outcome.succeeded,
            attempted_at=now,
        )
        delivery.last_attempt_at = now
        delivery.last_response_status = outcome.status
        delivery.last_response_excerpt = outcome.excerpt
        delivery.last_error = outcome.error
        delivery.updated_at = now
        ours = delivery.claim_token == claim.token
        if outcome.succeeded:
            # Delivered is a fact, whoever holds the claim now.
            delivery.status = WebhookDelivery.Status.SUCCEEDED
            delivery.succeeded_at = now
            delivery.next_attempt_at = None
            delivery.claimed_until = None
            delivery.claim_token = None
        elif ours:
            _schedule_retry(delivery, now=now)
        # else: our claim lapsed and another worker owns the delivery's next step.
        delivery.save()
        _endpoint_track(endpoint, succeeded=outcome.succeeded, now=now)
    return delivery


def _schedule_retry(delivery: WebhookDelivery, *, now: datetime) -> None:
    schedule = settings.WEBHOOK_RETRY_SCHEDULE
    attempts_in_round = delivery.attempt_count - delivery.round_start_attempt
    delivery.claimed_until = None
    delivery.claim_token = None
    if attempts_in_round <= len(schedule):
        delivery.status = WebhookDelivery.Status.RETRYING
        delivery.next_attempt_at = now + timedelta(seconds=schedule[attempts_in_round - 1])
        delivery.dispatched_at = None  # the sweeper queues it when it is due
    else:
        delivery.status = WebhookDelivery.Status.ABANDONED
        delivery.next_attempt_at = None


def _endpoint_track(endpoint: WebhookEndpoint, *, succeeded: bool, now: datetime) -> None:
    """Keep the endpoint's failure streak; disable it when it has been failing for too long."""
    if succeeded:
        if endpoint.consecutive_failures:
            endpoint.consecutive_failures = 0
            endpoint.failing_since = None
            endpoint.save(update_fields=["consecutive_failures", "failing_since"])
        return
    endpoint.consecutive_failures += 1
    endpoint.failing_since = endpoint.failing_since or now
    endpoint.save(update_fields=["consecutive_failures", "failing_since"])
    failing_for = now - endpoint.failing_since
    if (
        endpoint.status == WebhookEndpoint.Status.ENABLED
        and endpoint.consecutive_failures >= settings.WEBHOOK_DISABLE_AFTER_FAILURES
        and failing_for >= timedelta(hours=settings.WEBHOOK_DISABLE_AFTER_HOURS)
    ):
        before = _endpoint_snapshot(endpoint)
        _disable(
            endpoint,
            reason=(
                f"Disabled automatically after {endpoint.consecutive_failures} failed attempts "
                f"in a row since {endpoint.failing_since:%Y-%m-%d %H:%M} UTC."
            ),
            now=now,
        )
        audit_record(
            actor=SYSTEM,
            action="webhook_endpoint.disable",
            instance=endpoint,
            before=before,
            after=_endpoint_snapshot(endpoint),
        )
        transaction.on_commit(partial(_notify_disabled, endpoint.pk), robust=True)


def _notify_disabled(endpoint_id: int) -> None:
    from core.webhooks.tasks import notify_webhook_endpoint_disabled

    notify_webhook_endpoint_disabled.delay(endpoint_id)
