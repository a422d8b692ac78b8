"""Customers and their interactions log.

Partner API keys see and change only their partner's customers: every read goes through
`customers_visible_to` (another partner's customer is a 404, never a 403), and the services
force the partner on writes.
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
from api.serializers.customers import (
    CustomerListQuerySerializer,
    CustomerSerializer,
    CustomerWriteSerializer,
    InteractionCreateSerializer,
    InteractionSerializer,
)
from customers.selectors import customer_get, customer_list, interactions_for
from customers.services import customer_create, customer_update, interaction_record

CUSTOMER_ID = OpenApiParameter("id", int, OpenApiParameter.PATH, description="Customer id.")
CUSTOMER_ID_NESTED = OpenApiParameter(
    "customer_id", int, OpenApiParameter.PATH, description="Customer id."
)


@extend_schema_view(
    list=extend_schema(
        operation_id="customers_list",
        summary="List customers",
        parameters=[CustomerListQuerySerializer],
        responses=CustomerSerializer(many=True),
    ),
    create=extend_schema(
        operation_id="customers_create",
        summary="Create a customer",
        request=CustomerWriteSerializer,
        responses={201: CustomerSerializer},
    ),
    retrieve=extend_schema(
        operation_id="customers_retrieve",
        summary="Retrieve a customer",
        parameters=[CUSTOMER_ID],
        responses=CustomerSerializer,
    ),
    partial_update=extend_schema(
        operation_id="customers_update",
        summary="Update a customer",
        parameters=[CUSTOMER_ID],
        request=CustomerWriteSerializer(partial=True),
        responses=CustomerSerializer,
    ),
)
@extend_schema(tags=["customers"])
class CustomerViewSet(PlatformViewSet):
    lookup_value_regex = "[0-9]+"
    filter_backends: list[Any] = []
    pagination_class = IdCursorPagination

    def list(self, request: Request) -> Response:
        filters = query_filters(request, CustomerListQuerySerializer)
        customers = customer_list(
            partner=partner_scope(request), partner_code=filters.pop("partner", None), **filters
        )
        return self.paginated_response(customers, CustomerSerializer)

    def create(self, request: Request) -> Response:
        scope = partner_scope(request)
        payload = CustomerWriteSerializer(data=request.data, context={"partner_scope": scope})
        payload.is_valid(raise_exception=True)
        customer = customer_create(**payload.validated_data, actor=self.actor, partner_scope=scope)
        return Response(CustomerSerializer(customer).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, pk: str) -> Response:
        customer = customer_get(pk=pk, partner=partner_scope(request))
        return Response(CustomerSerializer(customer).data)

    def partial_update(self, request: Request, pk: str) -> Response:
        scope = partner_scope(request)
        customer = customer_get(pk=pk, partner=scope)
        payload = CustomerWriteSerializer(
            data=request.data, partial=True, context={"partner_scope": scope}
        )
        payload.is_valid(raise_exception=True)
        customer = customer_update(
            customer=customer, **payload.validated_data, actor=self.actor, partner_scope=scope
        )
        return Response(CustomerSerializer(customer).data)


class InteractionCursorPagination(IdCursorPagination):
    # A call logged afterwards keeps its real time: the history reads by when things happened.
    ordering = ("-occurred_at", "-id")


@extend_schema_view(
    list=extend_schema(
        operation_id="customers_interactions_list",
        summary="List a customer's interactions",
        parameters=[CUSTOMER_ID_NESTED],
        responses=InteractionSerializer(many=True),
    ),
    create=extend_schema(
        operation_id="customers_interactions_create",
        summary="Record an interaction with a customer",
        description="The author is the API key that records it.",
        parameters=[CUSTOMER_ID_NESTED],
        request=InteractionCreateSerializer,
        responses={201: InteractionSerializer},
    ),
)
@extend_schema(tags=["customers"])
class CustomerInteractionViewSet(PlatformViewSet):
    filter_backends: list[Any] = []
    pagination_class = InteractionCursorPagination

    def list(self, request: Request, customer_id: str) -> Response:
        customer = customer_get(pk=customer_id, partner=partner_scope(request))
        return self.paginated_response(interactions_for(customer=customer), InteractionSerializer)

    def create(self, request: Request, customer_id: str) -> Response:
        scope = partner_scope(request)
        customer = customer_get(pk=customer_id, partner=scope)
        payload = InteractionCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        interaction = interaction_record(
            customer=customer, **payload.validated_data, actor=self.actor, partner_scope=scope
        )
        return Response(InteractionSerializer(interaction).data, status=status.HTTP_201_CREATED)


def register(router: DefaultRouter) -> None:
    """Register this module's viewsets on the v1 router."""
    router.register("customers", CustomerViewSet, basename="customers")
    router.register(
        r"customers/(?P<customer_id>[0-9]+)/interactions",
        CustomerInteractionViewSet,
        basename="customer-interactions",
    )
