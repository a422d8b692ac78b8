"""The one error family of the platform.

Services raise these; the API maps them once to `{"error": {"type", "code", "message", "param"}}`
and forms map them to field errors. `type` says which family, `code` is a stable machine-readable
reason, `param` names the offending input when there is one.
"""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    type = "application_error"
    status_code = 400
    default_code = "application_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.param = param
        self.extra = extra or {}


class ValidationError(ApplicationError):
    type = "invalid_request_error"
    status_code = 400
    default_code = "invalid"


class NotFoundError(ApplicationError):
    type = "invalid_request_error"
    status_code = 404
    default_code = "not_found"


class ConflictError(ApplicationError):
    """The request is valid but clashes with the current state (or a concurrent request)."""

    type = "conflict_error"
    status_code = 409
    default_code = "conflict"


class PermissionDeniedError(ApplicationError):
    type = "permission_error"
    status_code = 403
    default_code = "permission_denied"
