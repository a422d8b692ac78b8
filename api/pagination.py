from __future__ import annotations

from typing import Any

from rest_framework.exceptions import NotFound
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request

from core.errors import ValidationError


class IdCursorPagination(CursorPagination):
    """Newest first, stable under inserts: the cursor is the last id seen.

    `limit` takes 1 to 200 (default 50); a limit or cursor that makes no sense is a 400 naming
    the parameter, never a silent fallback.
    """

    ordering: str | list[str] | tuple[str, ...] = "-id"
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= self.max_page_size:
            raise ValidationError(
                f"limit is a whole number from 1 to {self.max_page_size}.",
                code="invalid_limit",
                param=self.page_size_query_param,
            )
        return int(raw)

    def decode_cursor(self, request: Request) -> Cursor | None:
        try:
            return super().decode_cursor(request)
        except NotFound:
            raise ValidationError(
                "This cursor is not valid; use the next or previous link of a page.",
                code="invalid_cursor",
                param=self.cursor_query_param,
            ) from None

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": self.max_page_size,
                    "default": self.page_size,
                }
        return parameters
