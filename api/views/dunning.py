"""Dunning cases: the collection of unpaid subscription invoices (docs/dunning.md). Read-only;
a partner key sees its own customers' cases only (another's is a 404)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from api.base import PlatformViewSet, partner_scope, query_filters
from api.pagination import IdCursorPagination
from api.serializers.dunning import DunningCaseListQuerySerializer, DunningCaseSerializer
from subscriptions.selectors import dunning_case_get, dunning_case_list

DUNNING_CASE_ID = OpenApiParameter("id", int, OpenApiParameter.PATH, description="Case id.")


@extend_schema_view(
    list=extend_schema(
        operation_id="dunning_cases_list",
        summary="List dunning cases",
        description="Newest first; filter by customer, status (open, closed) and stage.",
        parameters=[DunningCaseListQuerySerializer],
        responses=DunningCaseSerializer(many=True),
    ),
    retrieve=extend_schema(
        operation_id="dunning_cases_retrieve",
        summary="Retrieve a dunning case",
        parameters=[DUNNING_CASE_ID],
        responses=DunningCaseSerializer,
    ),
)
@extend_schema(tags=["dunning"])
class DunningCaseViewSet(PlatformViewSet):
    lookup_value_regex = "[0-9]+"
    filter_backends: list[Any] = []
    pagination_class = IdCursorPagination

    def list(self, request: Request) -> Response:
        filters = query_filters(request, DunningCaseListQuerySerializer)
        cases = dunning_case_list(
            partner=partner_scope(request),
            customer_id=filters.get("customer"),
            status=filters.get("status"),
            stage=filters.get("stage"),
        )
        return self.paginated_response(cases, DunningCaseSerializer)

    def retrieve(self, request: Request, pk: str) -> Response:
        case = dunning_case_get(pk=pk, partner=partner_scope(request))
        return Response(DunningCaseSerializer(case).data)


def register(router: DefaultRouter) -> None:
    """Register this module's viewsets on the v1 router."""
    router.register("dunning_cases", DunningCaseViewSet, basename="dunning-cases")
