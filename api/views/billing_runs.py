"""Billing runs: list and read them, start one by hand (admin scope).

The scheduled run starts every hour by itself (django-celery-beat); starting one here queues the
same work. The response is the run as recorded: its chunks are processed by the workers after.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from api.base import PlatformViewSet
from api.pagination import IdCursorPagination
from api.serializers.billing_runs import BillingRunSerializer, BillingRunStartSerializer
from subscriptions.billing_run import billing_run_get, billing_run_list, billing_run_start

RUN_ID = OpenApiParameter("id", int, OpenApiParameter.PATH, description="Billing run id.")


@extend_schema_view(
    list=extend_schema(
        operation_id="billing_runs_list",
        summary="List billing runs",
        description="Admin scope. Newest first, with counters, progress and failures.",
        responses=BillingRunSerializer(many=True),
    ),
    retrieve=extend_schema(
        operation_id="billing_runs_retrieve",
        summary="Retrieve a billing run",
        parameters=[RUN_ID],
        responses=BillingRunSerializer,
    ),
    create=extend_schema(
        operation_id="billing_runs_create",
        summary="Start a billing run",
        description="Admin scope. Records a run over everything due by `as_of` and queues its "
        "chunks for the workers; 201 with the run as started.",
        request=BillingRunStartSerializer,
        responses={201: BillingRunSerializer},
    ),
)
@extend_schema(tags=["billing runs"])
class BillingRunViewSet(PlatformViewSet):
    lookup_value_regex = "[0-9]+"
    filter_backends: list[Any] = []
    pagination_class = IdCursorPagination
    required_scopes = {"list": "admin", "retrieve": "admin", "create": "admin"}

    def list(self, request: Request) -> Response:
        return self.paginated_response(
            billing_run_list().prefetch_related("failures"), BillingRunSerializer
        )

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(BillingRunSerializer(billing_run_get(run_id=int(pk))).data)

    def create(self, request: Request) -> Response:
        serializer = BillingRunStartSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        run = billing_run_start(actor=self.actor, **serializer.validated_data)
        return Response(BillingRunSerializer(run).data, status=status.HTTP_201_CREATED)


def register(router: DefaultRouter) -> None:
    """Register this module's viewsets on the v1 router."""
    router.register("billing_runs", BillingRunViewSet, basename="billing-runs")
