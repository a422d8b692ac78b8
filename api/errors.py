"""One error shape for the whole API: {"error": {"type", "code", "message", "param"}}."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.settings import api_settings

from core.errors import ApplicationError
from core.middleware import current_request_id


def error_body(type_: str, code: str, message: str, param: str | None = None) -> dict[str, Any]:
    return {"error": {"type": type_, "code": code, "message": message, "param": param}}


def _validation_errors(detail: Any, param: str = "") -> Iterator[tuple[str, Any]]:
    """(param, error) for every leaf of a DRF error tree, in field order.

    Nested serializer fields are dotted (`address.city`); items of a list are indexed
    (`items[1].amount`, `tags[0]`); `non_field_errors` belong to the object that holds them.
    """
    if isinstance(detail, dict):
        for key, sub in detail.items():
            yield from _validation_errors(sub, _child_param(param, key))
    elif isinstance(detail, list):
        for index, item in enumerate(detail):
            if isinstance(item, dict | list):
                # A list of nested serializers reports valid items as {}: they yield nothing.
                yield from _validation_errors(item, f"{param}[{index}]")
            else:
                yield param, item
    else:
        yield param, detail


def _child_param(param: str, key: Any) -> str:
    if key == api_settings.NON_FIELD_ERRORS_KEY:
        return param
    if isinstance(key, int):  # ListField and DictField children report their errors by index
        return f"{param}[{key}]"
    return f"{param}.{key}" if param else str(key)


def _first_validation_error(detail: Any) -> tuple[str | None, str, str]:
    """(param, code, message) of the first error in a DRF error tree."""
    for param, error in _validation_errors(detail):
        return (param or None, getattr(error, "code", None) or "invalid", str(error))
    return (None, "invalid", "Invalid input.")


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    headers: dict[str, str] = {}
    if isinstance(exc, ApplicationError):
        body = error_body(exc.type, exc.code, exc.message, exc.param)
        return Response(body, status=exc.status_code)
    if isinstance(exc, Http404):
        return Response(
            error_body("invalid_request_error", "not_found", "No such object."), status=404
        )
    if isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None  # a bug: let Django log it and answer 500
    if isinstance(exc, exceptions.ValidationError):
        param, code, message = _first_validation_error(exc.detail)
        body = error_body("invalid_request_error", code, message, param)
    elif isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        body = error_body("authentication_error", exc.default_code, str(exc.detail))
    elif isinstance(exc, exceptions.PermissionDenied):
        body = error_body("permission_error", "permission_denied", str(exc.detail))
    elif isinstance(exc, exceptions.NotFound):
        body = error_body("invalid_request_error", "not_found", str(exc.detail))
    elif isinstance(exc, exceptions.Throttled):
        wait = math.ceil(getattr(exc, "wait", None) or 1)
        headers["Retry-After"] = str(wait)
        body = error_body(
            "rate_limit_error", "rate_limited", f"Too many requests; retry in {wait} seconds."
        )
    else:
        body = error_body("invalid_request_error", exc.default_code, str(exc.detail))
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
    return Response(body, status=exc.status_code, headers=headers)


def json_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(
        error_body("invalid_request_error", "not_found", f"No such endpoint: {request.path}"),
        status=status.HTTP_404_NOT_FOUND,
    )


def json_server_error(request: HttpRequest) -> JsonResponse:
    """The 500 of the API: the error shape, naming the request id to quote to support."""
    return JsonResponse(
        error_body(
            "api_error",
            "internal_error",
            "Something went wrong on our side. Quote the request id "
            f"{current_request_id() or '(none)'} when you contact support.",
        ),
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )


def json_bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(
        error_body("invalid_request_error", "bad_request", "The request could not be understood."),
        status=status.HTTP_400_BAD_REQUEST,
    )
