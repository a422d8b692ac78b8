"""One error shape everywhere: {"error": {"type", "code", "message", "param"}}."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from django.http import Http404
from rest_framework import serializers
from rest_framework.exceptions import ValidationError as DRFValidationError
from rest_framework.test import APIClient

from api.errors import _first_validation_error, api_exception_handler
from api.models import IdempotencyRecord
from core.errors import ConflictError
from core.models import AuditLog
from tests.api.routes import api_routes

pytestmark = pytest.mark.django_db

ERROR_KEYS = {"type", "code", "message", "param"}


def _error(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == ERROR_KEYS
    return body["error"]


def test_a_missing_field_is_a_validation_error_naming_it(api: APIClient) -> None:
    response = api.post("/api/v1/test_clock/advance", {}, format="json")

    assert response.status_code == 400
    assert _error(response) == {
        "type": "invalid_request_error",
        "code": "required",
        "message": "This field is required.",
        "param": "to",
    }


def test_an_invalid_value_is_a_validation_error_naming_it(api: APIClient) -> None:
    response = api.post("/api/v1/test_clock/advance", {"to": "next tuesday"}, format="json")

    assert response.status_code == 400
    error = _error(response)
    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error",
        "invalid",
        "to",
    )


def test_an_unknown_api_url_is_a_json_404(api: APIClient) -> None:
    for path in ("/api/v1/xyz", "/api/v1/test_clock/xyz", "/api/v2/customers", "/api/v1/"):
        response = api.get(path)

        assert response.status_code == 404, path
        assert response["Content-Type"] == "application/json"
        assert _error(response) == {
            "type": "invalid_request_error",
            "code": "not_found",
            "message": f"No such endpoint: {path}",
            "param": None,
        }


def test_an_unknown_api_url_is_a_json_404_for_writes_and_without_a_key(clock: Any) -> None:
    response = APIClient().post("/api/v1/xyz", {"a": 1}, format="json")

    assert response.status_code == 404
    assert _error(response)["code"] == "not_found"


def test_an_unknown_page_outside_the_api_stays_html(client: Any) -> None:
    response = client.get("/no-such-page")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def _detail_routes() -> list[str]:
    return [r.path for r in api_routes() if r.action("GET") == "retrieve"]


@pytest.mark.parametrize("path", _detail_routes())
def test_an_unknown_id_is_a_404_in_the_error_shape(path: str, api: APIClient) -> None:
    response = api.get(path)

    assert response.status_code == 404, response.content
    error = _error(response)
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "not_found" or error["code"].endswith("_not_found")


def test_a_method_the_endpoint_does_not_take_is_a_405(api: APIClient) -> None:
    response = api.post(
        "/api/v1/test_clock", {}, format="json", headers={"Idempotency-Key": "k-405"}
    )

    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD, OPTIONS"
    assert _error(response) == {
        "type": "invalid_request_error",
        "code": "method_not_allowed",
        "message": 'Method "POST" not allowed.',
        "param": None,
    }
    assert not IdempotencyRecord.objects.exists()  # a 405 is not worth remembering


def test_a_malformed_json_body_is_a_parse_error(api: APIClient) -> None:
    response = api.generic(
        "POST", "/api/v1/test_clock/advance", '{"to": "2026-02-01', content_type="application/json"
    )

    assert response.status_code == 400
    error = _error(response)
    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error",
        "parse_error",
        None,
    )
    assert error["message"].startswith("JSON parse error")
    assert not AuditLog.objects.filter(action="test_clock.advance").exists()


def test_a_body_that_is_not_json_is_a_415(api: APIClient) -> None:
    response = api.post("/api/v1/test_clock/advance", {"to": "2026-02-01T00:00:00Z"})

    assert response.status_code == 415
    assert _error(response)["code"] == "unsupported_media_type"


def test_an_application_error_keeps_its_type_code_and_param() -> None:
    exc = ConflictError("Already exists.", code="customer_exists", param="external_id")

    response = api_exception_handler(exc, {})

    assert response is not None
    assert response.status_code == 409
    assert response.data == {
        "error": {
            "type": "conflict_error",
            "code": "customer_exists",
            "message": "Already exists.",
            "param": "external_id",
        }
    }


def test_django_http404_is_mapped_to_the_error_shape() -> None:
    response = api_exception_handler(Http404("gone"), {})

    assert response is not None
    assert response.status_code == 404
    assert response.data["error"]["code"] == "not_found"


def test_an_unexpected_exception_is_left_to_the_500_handler() -> None:
    assert api_exception_handler(RuntimeError("bug"), {}) is None


def test_a_server_error_on_an_api_url_is_json_with_the_request_id(
    clock: Any,
    api_client_for: Callable[..., APIClient],
    daily_work: Callable[..., None],
) -> None:
    def broken(day: date) -> dict[str, int]:
        raise RuntimeError("bug in the billing run")

    daily_work("broken", broken)
    client = api_client_for(scopes=["admin"])
    client.raise_request_exception = False

    response = client.post(
        "/api/v1/test_clock/advance",
        {"to": "2026-01-16T00:00:00Z"},
        format="json",
        headers={"X-Request-ID": "trace-500"},
    )

    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert response["X-Request-ID"] == "trace-500"
    assert _error(response) == {
        "type": "api_error",
        "code": "internal_error",
        "message": (
            "Something went wrong on our side. Quote the request id trace-500 when you contact "
            "support."
        ),
        "param": None,
    }


# --- which field an error names ------------------------------------------------------------


class _Line(serializers.Serializer):
    description = serializers.CharField()
    amount = serializers.DecimalField(max_digits=10, decimal_places=2)


class _Address(serializers.Serializer):
    city = serializers.CharField()
    postal_code = serializers.CharField(max_length=5)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["city"] == "Nowhere":
            raise serializers.ValidationError("No such place.", code="unknown_place")
        return attrs


class _Invoice(serializers.Serializer):
    customer = serializers.IntegerField()
    address = _Address(required=False)
    lines = _Line(many=True, required=False)
    tags = serializers.ListField(child=serializers.SlugField(), required=False)
    metadata = serializers.DictField(child=serializers.CharField(max_length=3), required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["customer"] == 0:
            raise serializers.ValidationError("Customer 0 is reserved.", code="reserved")
        return attrs


def _param_code_message(data: dict[str, Any]) -> tuple[str | None, str, str]:
    serializer = _Invoice(data=data)
    assert not serializer.is_valid()
    return _first_validation_error(serializer.errors)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({}, ("customer", "required", "This field is required.")),
        (
            {"customer": 1, "address": {"city": "Paris", "postal_code": "7500123"}},
            (
                "address.postal_code",
                "max_length",
                "Ensure this field has no more than 5 characters.",
            ),
        ),
        (
            {"customer": 1, "address": {"city": "Nowhere", "postal_code": "1"}},
            ("address", "unknown_place", "No such place."),
        ),
        (
            {
                "customer": 1,
                "lines": [
                    {"description": "ok", "amount": "1.00"},
                    {"description": "bad", "amount": "x"},
                ],
            },
            ("lines[1].amount", "invalid", "A valid number is required."),
        ),
        (
            {"customer": 1, "tags": ["fine", "not a slug"]},
            ("tags[1]", "invalid", re.compile("slug")),
        ),
        (
            {"customer": 1, "metadata": {"plan": "gold"}},
            (
                "metadata.plan",
                "max_length",
                "Ensure this field has no more than 3 characters.",
            ),
        ),
        ({"customer": 0}, (None, "reserved", "Customer 0 is reserved.")),
    ],
)
def test_the_error_names_the_first_offending_field_dotted(
    data: dict[str, Any], expected: tuple[Any, str, Any]
) -> None:
    param, code, message = _param_code_message(data)

    assert (param, code) == expected[:2]
    if isinstance(expected[2], re.Pattern):
        assert expected[2].search(message)
    else:
        assert message == expected[2]


def test_a_plain_validation_error_names_no_field() -> None:
    assert _first_validation_error(DRFValidationError("Nope.", code="nope").detail) == (
        None,
        "nope",
        "Nope.",
    )
    assert _first_validation_error({}) == (None, "invalid", "Invalid input.")
