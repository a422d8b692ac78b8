"""Every route of the versioned API, read from the URL resolver, for the convention tests.

It follows whatever the apps register, so the conventions stay checked as endpoints are added.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver, resolve
from rest_framework.permissions import SAFE_METHODS

API_PREFIX = "/api/v1/"
# Routes outside the API-key conventions, each with the reason. Stripe calls its webhook
# endpoint without an API key: the Stripe-Signature header authenticates it instead, so it has
# no key authentication, scopes or rate limit (tests/payments/test_stripe_webhooks.py checks it).
EXEMPT_PATHS = frozenset({"/api/v1/webhooks/stripe"})
UNKNOWN_ID = "999999999"
_GROUP = re.compile(r"\(\?P<(?P<name>\w+)>[^)]*\)")
_HTTP_METHODS = ("get", "post", "put", "patch", "delete")


@dataclass(frozen=True)
class Route:
    path: str  # a concrete path, parameters filled with sample values
    callback: Any
    parameters: tuple[str, ...]
    methods: tuple[str, ...] = field(default=())  # upper case, OPTIONS included

    @property
    def view_class(self) -> type | None:
        return getattr(self.callback, "cls", None)

    def action(self, method: str) -> str | None:
        actions = getattr(self.callback, "actions", None) or {}
        return actions.get("get" if method == "HEAD" else method.lower())

    def required_scope(self, method: str) -> str:
        """The scope `api.permissions.HasScope` asks of `method` on this route."""
        action = self.action(method) or ("get" if method == "HEAD" else method.lower())
        required = getattr(self.view_class, "required_scopes", {}).get(action)
        return required or ("read" if method in SAFE_METHODS else "write")

    def __str__(self) -> str:
        return self.path


def _walk(patterns: list[Any], prefix: str) -> Iterator[tuple[str, Any]]:
    for pattern in patterns:
        regex = prefix + _strip_anchors(pattern.pattern.regex.pattern)
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, regex)
        elif isinstance(pattern, URLPattern):
            yield regex, pattern.callback


def _strip_anchors(regex: str) -> str:
    regex = regex.removeprefix("^")
    for suffix in (r"\Z", "$"):
        regex = regex.removesuffix(suffix)
    return regex


def _sample_path(regex: str) -> tuple[str, tuple[str, ...]]:
    names = tuple(match["name"] for match in _GROUP.finditer(regex))
    path = _GROUP.sub(lambda m: "json" if m["name"] == "format" else UNKNOWN_ID, regex)
    path = path.replace("/?", "").replace("\\.", ".").replace("\\", "")
    return "/" + path, names


def _methods(callback: Any) -> tuple[str, ...]:
    actions = getattr(callback, "actions", None)
    view_class = getattr(callback, "cls", None)
    if actions:
        methods = [m for m in _HTTP_METHODS if m in actions]
    elif view_class is not None:
        methods = [m for m in _HTTP_METHODS if hasattr(view_class, m)]
    else:  # a plain Django view: try the two verbs every view must guard
        methods = ["get", "post"]
    head = ("HEAD",) if "get" in methods else ()
    return (*(m.upper() for m in methods), *head, "OPTIONS")


def api_routes() -> list[Route]:
    """Each route under /api/v1/ once (format-suffix aliases left out), in URLconf order."""
    routes: list[Route] = []
    for regex, callback in _walk(get_resolver().url_patterns, ""):
        path, parameters = _sample_path(regex)
        if not path.startswith(API_PREFIX) or "format" in parameters or path in EXEMPT_PATHS:
            continue
        # The sample path must lead back to the same view, or the walk above is wrong.
        assert resolve(path).func is callback, path
        routes.append(Route(path, callback, parameters, _methods(callback)))
    return routes


def route_methods(**filters: Any) -> list[tuple[Route, str]]:
    """(route, method) pairs for parametrizing, e.g. `route_methods(safe=False)`."""
    pairs = [(route, method) for route in api_routes() for method in route.methods]
    if "safe" in filters:
        pairs = [(r, m) for r, m in pairs if (m in SAFE_METHODS) == filters["safe"]]
    if "scope" in filters:
        pairs = [(r, m) for r, m in pairs if r.required_scope(m) == filters["scope"]]
    return pairs
