"""The notification log: every email sent to customers (renewal, trial-ending and price-change
notices, dunning emails...), with its delivery status. Read-only, admin scope."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from api.base import PlatformViewSet, query_filters
from api.pagination import IdCursorPagination
from api.serializers.notifications import (
    NotificationDetailSerializer,
    NotificationListQuerySerializer,
    NotificationSerializer,
)
from core.notifications.selectors import notification_get, notification_list

NOTIFICATION_ID = OpenApiParameter("id", int, OpenApiParameter.PATH, description="Notification id.")


@extend_schema_view(
    list=extend_schema(
        operation_id="notifications_list",
        summary="List notifications",
        description="The notification log, newest first (admin scope).",
        parameters=[NotificationListQuerySerializer],
        responses=NotificationSerializer(many=True),
    ),
    retrieve=extend_schema(
        operation_id="notifications_retrieve",
        summary="Retrieve a notification",
        description="One notification with the text and HTML bodies that were sent (admin scope).",
        parameters=[NOTIFICATION_ID],
        responses=NotificationDetailSerializer,
    ),
)
@extend_schema(tags=["notifications"])
class NotificationViewSet(PlatformViewSet):
    lookup_value_regex = "[0-9]+"
    filter_backends: list[Any] = []
    pagination_class = IdCursorPagination
    required_scopes = {"list": "admin", "retrieve": "admin"}

    def list(self, request: Request) -> Response:
        filters = query_filters(request, NotificationListQuerySerializer)
        notifications = notification_list(
            kind=filters.get("kind"),
            customer_id=filters.get("customer"),
            status=filters.get("status"),
            created_after=filters.get("created_after"),
            created_before=filters.get("created_before"),
        )
        return self.paginated_response(notifications, NotificationSerializer)

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(NotificationDetailSerializer(notification_get(pk=pk)).data)


def register(router: DefaultRouter) -> None:
    """Register this module's viewsets on the v1 router."""
    router.register("notifications", NotificationViewSet, basename="notifications")
