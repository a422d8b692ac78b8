"""Reads of webhook endpoints, events and deliveries, for the doors.

Partner scoping lives here: a partner sees its own endpoints, the events about its customers and
the deliveries to its endpoints; anything else is a 404, never a 403.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from django.db.models import Prefetch, QuerySet

from core.errors import NotFoundError
from core.webhooks.models import OutboxEvent, WebhookDelivery, WebhookEndpoint

if TYPE_CHECKING:
    from customers.models import Partner


def webhook_endpoints_visible_to(*, partner: Partner | None) -> QuerySet[WebhookEndpoint]:
    endpoints = WebhookEndpoint.objects.select_related("partner")
    if partner is not None:
        endpoints = endpoints.filter(partner=partner)
    return endpoints


def webhook_endpoint_list(
    *, partner: Partner | None, status: str | None = None
) -> QuerySet[WebhookEndpoint]:
    endpoints = webhook_endpoints_visible_to(partner=partner)
    if status is not None:
        endpoints = endpoints.filter(status=status)
    return endpoints


def webhook_endpoint_get(*, pk: int | str, partner: Partner | None) -> WebhookEndpoint:
    try:
        return webhook_endpoints_visible_to(partner=partner).get(pk=int(pk))
    except (WebhookEndpoint.DoesNotExist, ValueError, TypeError):
        raise NotFoundError(
            f"No such webhook endpoint: {pk}.", code="webhook_endpoint_not_found", param="id"
        ) from None


def events_visible_to(*, partner: Partner | None) -> QuerySet[OutboxEvent]:
    events = OutboxEvent.objects.all()
    if partner is not None:
        events = events.filter(customer_id__in=partner.customers.values("id"))
    return events


def event_list(
    *,
    partner: Partner | None,
    type: str | None = None,
    customer_id: int | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> QuerySet[OutboxEvent]:
    """Events visible to `partner`, narrowed by the filters; `created_after` is inclusive,
    `created_before` exclusive."""
    events = events_visible_to(partner=partner)
    if type is not None:
        events = events.filter(type=type)
    if customer_id is not None:
        events = events.filter(customer_id=customer_id)
    if created_after is not None:
        events = events.filter(created_at__gte=created_after)
    if created_before is not None:
        events = events.filter(created_at__lt=created_before)
    return events


def event_get(*, public_id: str, partner: Partner | None) -> OutboxEvent:
    """One event by its public id (`evt_...`), with the deliveries `partner` may see."""
    event = (
        events_visible_to(partner=partner)
        .prefetch_related(
            Prefetch(
                "deliveries",
                queryset=deliveries_visible_to(partner=partner).order_by("id"),
                to_attr="visible_deliveries",
            )
        )
        .filter(public_id=public_id)
        .first()
    )
    if event is None:
        raise NotFoundError(f"No such event: {public_id}.", code="event_not_found", param="id")
    return event


def deliveries_visible_to(*, partner: Partner | None) -> QuerySet[WebhookDelivery]:
    deliveries = WebhookDelivery.objects.select_related("event", "endpoint")
    if partner is not None:
        deliveries = deliveries.filter(endpoint__partner=partner)
    return deliveries


def webhook_delivery_list(
    *,
    partner: Partner | None,
    endpoint_id: int | None = None,
    status: str | None = None,
    event_public_id: str | None = None,
) -> QuerySet[WebhookDelivery]:
    deliveries = deliveries_visible_to(partner=partner)
    if endpoint_id is not None:
        deliveries = deliveries.filter(endpoint_id=endpoint_id)
    if status is not None:
        deliveries = deliveries.filter(status=status)
    if event_public_id is not None:
        deliveries = deliveries.filter(event__public_id=event_public_id)
    return deliveries


def webhook_delivery_get(*, pk: int | str, partner: Partner | None) -> WebhookDelivery:
    """One delivery with its attempts (the delivery log), oldest attempt first."""
    try:
        return deliveries_visible_to(partner=partner).prefetch_related("attempts").get(pk=int(pk))
    except (WebhookDelivery.DoesNotExist, ValueError, TypeError):
        raise NotFoundError(
            f"No such webhook delivery: {pk}.", code="webhook_delivery_not_found", param="id"
        ) from None
