"""One error shape for the whole API: {"error": {"type", "code", "message", "param"}}."""

from __future__ import annotations

import math
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response

from core.errors import ApplicationError


def error_body(type_: str, code: str, message: str, param: str | None = None) -> dict[str, Any]:
    return {"error": {"type": type_, "code": code, "message": message, "param": param}}


def _first_validation_error(detail: Any, prefix: str = "") -> tuple[str | None, str, str]:
    """(param, code, message) of the first field error in a DRF error tree."""
    if isinstance(detail, dict):
        for field, sub in detail.items():
            name = None if field == "non_field_errors" else field
            param = f"{prefix}.{name}" if prefix and name else (name or prefix or None)
            return _first_validation_error(sub, param or "")
    if isinstance(detail, list) and detail:
        for index, item in enumerate(detail):
            if isinstance(item, dict | list):
                return _first_validation_error(item, f"{prefix}[{index}]" if prefix else str(index))
            return (prefix or None, getattr(item, "code", "invalid") or "invalid", str(item))
    return (prefix or None, getattr(detail, "code", "invalid") or "invalid", str(detail))


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
