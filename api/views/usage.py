"""Metered usage and entitlements.

Usage events are recorded idempotently by the caller's event id: the first send answers 201,
the same event again 200 with the same body. Partner API keys record and read usage of their
own customers only (another partner's customer or subscription is a 404).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from api.base import PlatformViewSet, partner_scope, query_filters
from api.pagination import IdCursorPagination
from api.serializers.usage import (
    CustomerEntitlementsSerializer,
    UsageEventCreateSerializer,
    UsageEventListQuerySerializer,
    UsageEventSerializer,
    UsageSummaryQuerySerializer,
    UsageSummarySerializer,
)
from core import clock
from core.errors import NotFoundError
from customers.models import Customer, Partner
from customers.selectors import customer_get, customers_visible_to
from subscriptions.entitlements import entitlements_for
from subscriptions.usage import (
    usage_event_list,
    usage_event_record,
    usage_subscription_get,
    usage_summary,
)


def _customer_for(data: dict[str, Any], partner: Partner | None) -> Customer:
    if "customer" in data:
        return customer_get(pk=data["customer"], partner=partner)
    external_id = data["customer_external_id"]
    customer = customers_visible_to(partner=partner).filter(external_id=external_id).first()
    if customer is None:
        raise NotFoundError(
            f"No such customer: {external_id!r}.",
            code="customer_not_found",
            param="customer_external_id",
        )
    return customer


@extend_schema_view(
    list=extend_schema(
        operation_id="usage_events_list",
        summary="List usage events",
        parameters=[UsageEventListQuerySerializer],
        responses=UsageEventSerializer(many=True),
    ),
    create=extend_schema(
        operation_id="usage_events_create",
        summary="Record a usage event",
        description=(
            "Idempotent by `event_id` (per customer): 201 when recorded, 200 with the stored "
            "event when the same event is sent again, 409 `usage_event_conflict` when the id "
            "was used with other values. Refused: `no_metered_subscription`, "
            "`usage_in_future`, `usage_period_closed`, `invalid_usage_value`."
        ),
        request=UsageEventCreateSerializer,
        responses={201: UsageEventSerializer, 200: UsageEventSerializer},
    ),
)
@extend_schema(tags=["usage"])
class UsageEventViewSet(PlatformViewSet):
    filter_backends: list[Any] = []
    pagination_class = IdCursorPagination

    def list(self, request: Request) -> Response:
        filters = query_filters(request, UsageEventListQuerySerializer)
        events = usage_event_list(
            partner=partner_scope(request),
            customer_id=filters.get("customer"),
            customer_external_id=filters.get("customer_external_id"),
            meter_code=filters.get("meter"),
            subscription_id=filters.get("subscription"),
            occurred_after=filters.get("occurred_after"),
            occurred_before=filters.get("occurred_before"),
        )
        return self.paginated_response(events, UsageEventSerializer)

    def create(self, request: Request) -> Response:
        scope = partner_scope(request)
        payload = UsageEventCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        customer = _customer_for(data, scope)
        subscription = (
            usage_subscription_get(pk=data["subscription"], partner=scope)
            if "subscription" in data
            else None
        )
        event, created = usage_event_record(
            customer=customer,
            meter_code=data["meter"],
            event_id=data["event_id"],
            occurred_at=data.get("occurred_at"),
            properties=data.get("properties"),
            subscription=subscription,
            actor=self.actor,
        )
        return Response(
            UsageEventSerializer(event).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


@extend_schema_view(
    list=extend_schema(
        operation_id="usage_summary_retrieve",
        summary="Usage of a subscription so far",
        description=(
            "Per metered charge of the subscription's plan: the quantity over the period (the "
            "current period unless `period_start` and `period_end` are given) and its price now, "
            "exact and rounded as the invoice line would be."
        ),
        parameters=[UsageSummaryQuerySerializer],
        responses=UsageSummarySerializer,
    ),
)
@extend_schema(tags=["usage"])
class UsageSummaryViewSet(PlatformViewSet):
    filter_backends: list[Any] = []
    pagination_class = None

    def list(self, request: Request) -> Response:
        filters = query_filters(request, UsageSummaryQuerySerializer)
        subscription = usage_subscription_get(
            pk=filters["subscription"], partner=partner_scope(request)
        )
        summary = usage_summary(
            subscription=subscription,
            period_start=filters.get("period_start"),
            period_end=filters.get("period_end"),
        )
        return Response(UsageSummarySerializer(summary).data)


@extend_schema_view(
    list=extend_schema(
        operation_id="customers_entitlements_retrieve",
        summary="A customer's entitlements",
        description=(
            "The features the customer has now, from the plans of their trialing, active and "
            "past-due subscriptions and add-ons (none while paused, before the start or after "
            "the end), each with the subscriptions that grant it."
        ),
        parameters=[
            OpenApiParameter("customer_id", int, OpenApiParameter.PATH, description="Customer id.")
        ],
        responses=CustomerEntitlementsSerializer,
    ),
)
@extend_schema(tags=["customers"])
class CustomerEntitlementViewSet(PlatformViewSet):
    filter_backends: list[Any] = []
    pagination_class = None

    def list(self, request: Request, customer_id: str) -> Response:
        customer = customer_get(pk=customer_id, partner=partner_scope(request))
        today = clock.today()
        body = {
            "customer": customer.pk,
            "on": today,
            "entitlements": entitlements_for(customer=customer, on=today),
        }
        return Response(CustomerEntitlementsSerializer(body).data)


def register(router: DefaultRouter) -> None:
    """Register this module's viewsets on the v1 router."""
    router.register("usage_events", UsageEventViewSet, basename="usage-events")
    router.register("usage_summary", UsageSummaryViewSet, basename="usage-summary")
    router.register(
        r"customers/(?P<customer_id>[0-9]+)/entitlements",
        CustomerEntitlementViewSet,
        basename="customer-entitlements",
    )
