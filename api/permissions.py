from __future__ import annotations

from typing import Any

from rest_framework import permissions
from rest_framework.request import Request

from api.models import ApiKey


class HasScope(permissions.BasePermission):
    """Reads need `read`, writes need `write`; a view may demand more per action.

    Views set `required_scopes = {"advance": "admin"}` for stricter actions, and
    `partner_writes = False` where partner keys may only read (the catalog).
    """

    message = "This API key does not have the scope this request needs."

    def has_permission(self, request: Request, view: Any) -> bool:
        key = request.auth
        if not isinstance(key, ApiKey):
            return False
        safe = request.method in permissions.SAFE_METHODS
        # HEAD runs the GET handler, so it needs what GET needs (viewsets map it to the same
        # action already; plain API views would otherwise fall back to `read`).
        method = "get" if request.method == "HEAD" else (request.method or "").lower()
        action = getattr(view, "action", None) or method
        scope = getattr(view, "required_scopes", {}).get(action) or ("read" if safe else "write")
        if not key.has_scope(scope):
            self.message = f"This API key lacks the `{scope}` scope."
            return False
        if key.partner_id is not None and not safe and not getattr(view, "partner_writes", True):
            self.message = "Partner API keys can only read this resource."
            return False
        if key.partner_id is not None and scope == "admin":
            self.message = "Partner API keys cannot use admin endpoints."
            return False
        return True
