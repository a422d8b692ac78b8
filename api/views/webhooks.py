"""Outbound webhooks: endpoints, the events of the outbox, and the delivery log.

Managing endpoints (create, change, disable, enable, roll the secret, test) and resending need
the `admin` scope, which partner keys never have: the operator sets up a partner's endpoint by
naming the partner. Reads need `read`; a partner key sees its own partner's endpoints, the
events about its customers and the deliveries to its endpoints (anything else is a 404).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from api.base import PlatformViewSet, partner_scope, query_filters
from api.pagination import IdCursorPagination
from api.serializers.webhooks import (
    EventDetailSerializer,
    EventListQuerySerializer,
    EventSerializer,
    WebhookDeliveryDetailSerializer,
    WebhookDeliveryListQuerySerializer,
    WebhookDeliverySerializer,
    WebhookEndpointCreateSerializer,
    WebhookEndpointDisableSerializer,
    WebhookEndpointListQuerySerializer,
    WebhookEndpointRollSecretSerializer,
    WebhookEndpointSerializer,
    WebhookEndpointUpdateSerializer,
    WebhookEndpointWithSecretSerializer,
)
from core.webhooks.selectors import (
    event_get,
    event_list,
    webhook_delivery_get,
    webhook_delivery_list,
    webhook_endpoint_get,
    webhook_endpoint_list,
)
from core.webhooks.services import (
    webhook_endpoint_create,
    webhook_endpoint_disable,
    webhook_endpoint_enable,
    webhook_endpoint_ping,
    webhook_endpoint_roll_secret,
    webhook_endpoint_update,
    webhook_resend,
)

ENDPOINT_ID = OpenApiParameter("id", int, OpenApiParameter.PATH, description="Endpoint id.")
DELIVERY_ID = OpenApiParameter("id", int, OpenApiParameter.PATH, description="Delivery id.")
EVENT_ID = OpenApiParameter("id", str, OpenApiParameter.PATH, description="Event id (evt_...).")


def _delivery_response(delivery_pk: int | str, request: Request, *, code: int) -> Response:
    delivery = webhook_delivery_get(pk=delivery_pk, partner=partner_scope(request))
    return Response(WebhookDeliveryDetailSerializer(delivery).data, status=code)


@extend_schema_view(
    list=extend_schema(
        operation_id="webhook_endpoints_list",
        summary="List webhook endpoints",
        parameters=[WebhookEndpointListQuerySerializer],
        responses=WebhookEndpointSerializer(many=True),
    ),
    create=extend_schema(
        operation_id="webhook_endpoints_create",
        summary="Create a webhook endpoint",
        description=(
            "Answers with the signing secret, shown only this once (admin scope). http URLs "
            "are refused outside development, except for localhost."
        ),
        request=WebhookEndpointCreateSerializer,
        responses={201: WebhookEndpointWithSecretSerializer},
    ),
    retrieve=extend_schema(
        operation_id="webhook_endpoints_retrieve",
        summary="Retrieve a webhook endpoint",
        parameters=[ENDPOINT_ID],
        responses=WebhookEndpointSerializer,
    ),
    partial_update=extend_schema(
        operation_id="webhook_endpoints_update",
        summary="Change a webhook endpoint's URL, events or description",
        description="Admin scope.",
        parameters=[ENDPOINT_ID],
        request=WebhookEndpointUpdateSerializer,
        responses=WebhookEndpointSerializer,
    ),
)
@extend_schema(tags=["webhooks"])
class WebhookEndpointViewSet(PlatformViewSet):
    lookup_value_regex = "[0-9]+"
    filter_backends: list[Any] = []
    pagination_class = IdCursorPagination
    required_scopes = {
        "create": "admin",
        "partial_update": "admin",
        "disable": "admin",
        "enable": "admin",
        "roll_secret": "admin",
        "ping": "admin",
    }

    def list(self, request: Request) -> Response:
        query = query_filters(request, WebhookEndpointListQuerySerializer)
        endpoints = webhook_endpoint_list(
            partner=partner_scope(request), status=query.get("status")
        )
        return self.paginated_response(endpoints, WebhookEndpointSerializer)

    def create(self, request: Request) -> Response:
        payload = WebhookEndpointCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        endpoint = webhook_endpoint_create(**payload.validated_data, actor=self.actor)
        return Response(
            WebhookEndpointWithSecretSerializer(endpoint).data, status=status.HTTP_201_CREATED
        )

    def retrieve(self, request: Request, pk: str) -> Response:
        endpoint = webhook_endpoint_get(pk=pk, partner=partner_scope(request))
        return Response(WebhookEndpointSerializer(endpoint).data)

    def partial_update(self, request: Request, pk: str) -> Response:
        endpoint = webhook_endpoint_get(pk=pk, partner=partner_scope(request))
        payload = WebhookEndpointUpdateSerializer(data=request.data, partial=True)
        payload.is_valid(raise_exception=True)
        endpoint = webhook_endpoint_update(
            endpoint=endpoint, **payload.validated_data, actor=self.actor
        )
        return Response(WebhookEndpointSerializer(endpoint).data)

    @extend_schema(
        operation_id="webhook_endpoints_disable",
        summary="Disable a webhook endpoint",
        description=(
            "Nothing more is sent to it; its deliveries still waiting are marked failed (resend "
            "them after enabling it again). Admin scope."
        ),
        parameters=[ENDPOINT_ID],
        request=WebhookEndpointDisableSerializer,
        responses=WebhookEndpointSerializer,
    )
    @action(detail=True, methods=["post"])
    def disable(self, request: Request, pk: str) -> Response:
        endpoint = webhook_endpoint_get(pk=pk, partner=partner_scope(request))
        payload = WebhookEndpointDisableSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        endpoint = webhook_endpoint_disable(
            endpoint=endpoint, reason=payload.validated_data["reason"], actor=self.actor
        )
        return Response(WebhookEndpointSerializer(endpoint).data)

    @extend_schema(
        operation_id="webhook_endpoints_enable",
        summary="Enable a webhook endpoint again",
        description="Its failure count starts again from zero. Admin scope.",
        parameters=[ENDPOINT_ID],
        request=None,
        responses=WebhookEndpointSerializer,
    )
    @action(detail=True, methods=["post"])
    def enable(self, request: Request, pk: str) -> Response:
        endpoint = webhook_endpoint_get(pk=pk, partner=partner_scope(request))
        endpoint = webhook_endpoint_enable(endpoint=endpoint, actor=self.actor)
        return Response(WebhookEndpointSerializer(endpoint).data)

    @extend_schema(
        operation_id="webhook_endpoints_roll_secret",
        summary="Replace a webhook endpoint's signing secret",
        description=(
            "Answers with the new secret, shown only this once. With `keep_previous_hours`, "
            "requests carry a second `v1` signature made with the old secret until then. "
            "Admin scope."
        ),
        parameters=[ENDPOINT_ID],
        request=WebhookEndpointRollSecretSerializer,
        responses=WebhookEndpointWithSecretSerializer,
    )
    @action(detail=True, methods=["post"])
    def roll_secret(self, request: Request, pk: str) -> Response:
        endpoint = webhook_endpoint_get(pk=pk, partner=partner_scope(request))
        payload = WebhookEndpointRollSecretSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        endpoint = webhook_endpoint_roll_secret(
            endpoint=endpoint,
            keep_previous_for=timedelta(hours=payload.validated_data["keep_previous_hours"]),
            actor=self.actor,
        )
        return Response(WebhookEndpointWithSecretSerializer(endpoint).data)

    @extend_schema(
        operation_id="webhook_endpoints_test",
        summary="Send a ping event to a webhook endpoint",
        description=(
            "Queues a signed `ping` event for this endpoint only; follow the delivery to see "
            "the endpoint's answer. Admin scope."
        ),
        parameters=[ENDPOINT_ID],
        request=None,
        responses={201: WebhookDeliveryDetailSerializer},
    )
    @action(detail=True, methods=["post"], url_path="test")
    def ping(self, request: Request, pk: str) -> Response:
        endpoint = webhook_endpoint_get(pk=pk, partner=partner_scope(request))
        delivery = webhook_endpoint_ping(endpoint=endpoint, actor=self.actor)
        return _delivery_response(delivery.pk, request, code=status.HTTP_201_CREATED)


@extend_schema_view(
    list=extend_schema(
        operation_id="events_list",
        summary="List events",
        description="Newest first: everything the platform announced to webhook endpoints.",
        parameters=[EventListQuerySerializer],
        responses=EventSerializer(many=True),
    ),
    retrieve=extend_schema(
        operation_id="events_retrieve",
        summary="Retrieve an event with its deliveries",
        parameters=[EVENT_ID],
        responses=EventDetailSerializer,
    ),
)
@extend_schema(tags=["webhooks"])
class EventViewSet(PlatformViewSet):
    lookup_value_regex = "[A-Za-z0-9_]+"
    filter_backends: list[Any] = []
    pagination_class = IdCursorPagination

    def list(self, request: Request) -> Response:
        filters = query_filters(request, EventListQuerySerializer)
        events = event_list(
            partner=partner_scope(request),
            type=filters.get("type"),
            customer_id=filters.get("customer"),
            created_after=filters.get("created_after"),
            created_before=filters.get("created_before"),
        )
        return self.paginated_response(events, EventSerializer)

    def retrieve(self, request: Request, pk: str) -> Response:
        event = event_get(public_id=pk, partner=partner_scope(request))
        return Response(EventDetailSerializer(event).data)


@extend_schema_view(
    list=extend_schema(
        operation_id="webhook_deliveries_list",
        summary="List webhook deliveries",
        description="Newest first; one per event and endpoint.",
        parameters=[WebhookDeliveryListQuerySerializer],
        responses=WebhookDeliverySerializer(many=True),
    ),
    retrieve=extend_schema(
        operation_id="webhook_deliveries_retrieve",
        summary="Retrieve a webhook delivery with its attempts",
        description="The delivery log: every request made, with the endpoint's answer.",
        parameters=[DELIVERY_ID],
        responses=WebhookDeliveryDetailSerializer,
    ),
)
@extend_schema(tags=["webhooks"])
class WebhookDeliveryViewSet(PlatformViewSet):
    lookup_value_regex = "[0-9]+"
    filter_backends: list[Any] = []
    pagination_class = IdCursorPagination
    required_scopes = {"resend": "admin"}

    def list(self, request: Request) -> Response:
        filters = query_filters(request, WebhookDeliveryListQuerySerializer)
        deliveries = webhook_delivery_list(
            partner=partner_scope(request),
            endpoint_id=filters.get("endpoint"),
            status=filters.get("status"),
            event_public_id=filters.get("event"),
        )
        return self.paginated_response(deliveries, WebhookDeliverySerializer)

    def retrieve(self, request: Request, pk: str) -> Response:
        return _delivery_response(pk, request, code=status.HTTP_200_OK)

    @extend_schema(
        operation_id="webhook_deliveries_resend",
        summary="Resend a webhook delivery",
        description=(
            "Queues a new attempt now, whatever the delivery's state (except while an attempt "
            "is under way); its retry schedule starts over. The endpoint must be enabled. "
            "Admin scope."
        ),
        parameters=[DELIVERY_ID],
        request=None,
        responses=WebhookDeliveryDetailSerializer,
    )
    @action(detail=True, methods=["post"])
    def resend(self, request: Request, pk: str) -> Response:
        delivery = webhook_delivery_get(pk=pk, partner=partner_scope(request))
        webhook_resend(delivery=delivery, actor=self.actor)
        return _delivery_response(delivery.pk, request, code=status.HTTP_200_OK)


def register(router: DefaultRouter) -> None:
    """Register this module's viewsets on the v1 router."""
    router.register("webhook_endpoints", WebhookEndpointViewSet, basename="webhook-endpoints")
    router.register("events", EventViewSet, basename="events")
    router.register("webhook_deliveries", WebhookDeliveryViewSet, basename="webhook-deliveries")
