from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from api.base import PlatformAPIView
from core import clock
from core.services import test_clock_advance


class TestClockSerializer(serializers.Serializer):
    now = serializers.DateTimeField()
    today = serializers.DateField()


class TestClockAdvanceSerializer(serializers.Serializer):
    to = serializers.DateTimeField(help_text="Target time (ISO 8601 with a timezone).")


class DayWorkSerializer(serializers.Serializer):
    date = serializers.DateField()
    work = serializers.DictField(child=serializers.DictField(child=serializers.IntegerField()))


class TestClockAdvanceResultSerializer(serializers.Serializer):
    now = serializers.DateTimeField()
    today = serializers.DateField()
    advanced_from = serializers.DateTimeField()
    days = DayWorkSerializer(many=True)


class TestClockView(PlatformAPIView):
    @extend_schema(
        operation_id="test_clock_retrieve", responses=TestClockSerializer, tags=["test clock"]
    )
    def get(self, request: Request) -> Response:
        clock.require_test_mode()
        return Response(TestClockSerializer({"now": clock.now(), "today": clock.today()}).data)


class TestClockAdvanceView(PlatformAPIView):
    required_scopes = {"post": "admin"}

    @extend_schema(
        operation_id="test_clock_advance",
        request=TestClockAdvanceSerializer,
        responses=TestClockAdvanceResultSerializer,
        tags=["test clock"],
        description=(
            "Move the test clock forward, performing day by day all the work that falls due "
            "(admin scope; TEST_MODE only)."
        ),
    )
    def post(self, request: Request) -> Response:
        clock.require_test_mode()
        payload = TestClockAdvanceSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        result: dict[str, Any] = test_clock_advance(
            to=payload.validated_data["to"], actor=self.actor
        )
        body = {
            "now": clock.now(),
            "today": clock.today(),
            "advanced_from": result["from"],
            "days": result["days"],
        }
        return Response(TestClockAdvanceResultSerializer(body).data, status=status.HTTP_200_OK)
