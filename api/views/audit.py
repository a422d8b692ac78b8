"""The audit trail, read-only: who changed what, when, from which request."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins
from rest_framework.request import Request
from rest_framework.response import Response

from api.base import PlatformGenericAPIView, query_filters
from api.serializers.audit import AuditLogFilterSerializer, AuditLogSerializer
from core.models import AuditLog
from core.selectors import audit_log_list


class AuditLogListView(mixins.ListModelMixin, PlatformGenericAPIView):
    required_scopes = {"get": "admin"}
    serializer_class = AuditLogSerializer
    filter_backends: list[Any] = []  # filters are the selector's, validated below

    def get_queryset(self) -> QuerySet[AuditLog]:
        return audit_log_list(**query_filters(self.request, AuditLogFilterSerializer))

    @extend_schema(
        operation_id="audit_log_list",
        parameters=[AuditLogFilterSerializer],
        tags=["audit log"],
        description=(
            "Every recorded change, newest first: the actor (API key, staff user, customer or "
            "system), the action, the object, its fields before and after, and the request id "
            "(admin scope)."
        ),
    )
    def get(self, request: Request) -> Response:
        return self.list(request)
