"""Conventions every /api/v1/ endpoint keeps: authentication, scopes, partner limits.

The routes come from the URL resolver (tests/api/routes.py), so endpoints added later are
checked too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from api.models import ApiKey, IdempotencyRecord
from api.services import api_key_revoke
from core.actors import SYSTEM
from core.models import AuditLog
from customers.models import Partner
from tests.api.routes import Route, api_routes, route_methods

pytestmark = pytest.mark.django_db


def _call(client: APIClient, route: Route, method: str) -> Any:
    body = None if method in ("GET", "HEAD", "OPTIONS", "DELETE") else json.dumps({})
    return client.generic(
        method,
        route.path,
        body or "",
        content_type="application/json",
        headers={"Idempotency-Key": "convention-check"} if method == "POST" else {},
    )


def _assert_nothing_written() -> None:
    assert list(AuditLog.objects.values_list("action", flat=True)) == []
    assert not IdempotencyRecord.objects.exists()


def test_the_route_walk_finds_the_platform_endpoints() -> None:
    paths = {route.path: route.methods for route in api_routes()}

    assert paths["/api/v1/test_clock"] == ("GET", "HEAD", "OPTIONS")
    assert paths["/api/v1/test_clock/advance"] == ("POST", "OPTIONS")
    assert paths["/api/v1/audit_log"] == ("GET", "HEAD", "OPTIONS")
    assert {(r.path, m) for r, m in route_methods(scope="admin")} >= {
        ("/api/v1/test_clock/advance", "POST"),
        ("/api/v1/audit_log", "GET"),
        ("/api/v1/audit_log", "HEAD"),
    }


@pytest.mark.parametrize(("route", "method"), route_methods(), ids=str)
def test_every_endpoint_answers_401_without_a_key(route: Route, method: str, clock: Any) -> None:
    response = _call(APIClient(), route, method)

    assert response.status_code == 401, (route.path, method, response.content)
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    if method != "HEAD":
        assert response.json()["error"]["type"] == "authentication_error"
        assert response.json()["error"]["code"] == "not_authenticated"
    _assert_nothing_written()


@pytest.mark.parametrize(("route", "method"), route_methods(), ids=str)
def test_every_endpoint_answers_401_to_an_unknown_key(
    route: Route, method: str, clock: Any
) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer sk_test_not-a-key")

    response = _call(client, route, method)

    assert response.status_code == 401, (route.path, method, response.content)
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    if method != "HEAD":
        assert response.json()["error"] == {
            "type": "authentication_error",
            "code": "authentication_failed",
            "message": "Invalid or revoked API key.",
            "param": None,
        }
    _assert_nothing_written()


@pytest.mark.parametrize(("route", "method"), route_methods(safe=False), ids=str)
def test_a_read_key_cannot_write_anywhere(
    route: Route, method: str, api_client_for: Callable[..., APIClient], clock: Any
) -> None:
    client = api_client_for(scopes=["read"])
    AuditLog.objects.all().delete()  # the key's own creation

    response = _call(client, route, method)

    assert response.status_code == 403, (route.path, method, response.content)
    assert response.json()["error"]["type"] == "permission_error"
    assert response.json()["error"]["code"] == "permission_denied"
    _assert_nothing_written()


@pytest.mark.parametrize(("route", "method"), route_methods(scope="admin"), ids=str)
def test_a_write_key_cannot_use_admin_endpoints(
    route: Route, method: str, api_client_for: Callable[..., APIClient], clock: Any
) -> None:
    client = api_client_for(scopes=["write"])
    AuditLog.objects.all().delete()

    response = _call(client, route, method)

    assert response.status_code == 403, (route.path, method, response.content)
    if method != "HEAD":
        assert response.json()["error"] == {
            "type": "permission_error",
            "code": "permission_denied",
            "message": "This API key lacks the `admin` scope.",
            "param": None,
        }
    _assert_nothing_written()


@pytest.mark.parametrize(("route", "method"), route_methods(scope="admin"), ids=str)
def test_a_partner_key_cannot_use_admin_endpoints_even_with_the_admin_scope(
    route: Route,
    method: str,
    api_client_for: Callable[..., APIClient],
    partner: Partner,
) -> None:
    client = api_client_for(scopes=["admin"], partner=partner)
    AuditLog.objects.all().delete()

    response = _call(client, route, method)

    assert response.status_code == 403, (route.path, method, response.content)
    if method != "HEAD":
        assert response.json()["error"]["message"] == (
            "Partner API keys cannot use admin endpoints."
        )
    _assert_nothing_written()


def test_a_read_key_reads_and_an_admin_key_advances(
    api_client_for: Callable[..., APIClient], clock: Any
) -> None:
    reader = api_client_for(scopes=["read"])
    admin = api_client_for(scopes=["admin"])

    assert reader.get("/api/v1/test_clock").status_code == 200
    assert (
        reader.post("/api/v1/test_clock/advance", {"to": "2026-02-01T00:00:00Z"}).status_code == 403
    )
    response = admin.post(
        "/api/v1/test_clock/advance", {"to": "2026-02-01T00:00:00Z"}, format="json"
    )
    assert response.status_code == 200
    assert reader.get("/api/v1/test_clock").json()["today"] == "2026-02-01"


def test_a_revoked_key_is_refused(
    make_api_key: Callable[..., tuple[ApiKey, str]], clock: Any
) -> None:
    key, plaintext = make_api_key(scopes=["admin"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    assert client.get("/api/v1/test_clock").status_code == 200

    api_key_revoke(key=key, actor=SYSTEM)
    response = client.get("/api/v1/test_clock")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert response.json()["error"]["code"] == "authentication_failed"


def test_an_inactive_partners_key_is_refused(
    api_client_for: Callable[..., APIClient], partner: Partner
) -> None:
    client = api_client_for(scopes=["read"], partner=partner)
    Partner.objects.filter(pk=partner.pk).update(active=False)

    response = client.get("/api/v1/test_clock")

    assert response.status_code == 401
    assert response.json()["error"]["message"] == "This partner is inactive."


@pytest.mark.parametrize(
    "authorization",
    ["Basic dXNlcjpwYXNz", "Bearer", "Bearer    ", "Token sk_test_x", "sk_test_x"],
)
def test_a_malformed_authorization_header_is_refused(authorization: str, clock: Any) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=authorization)

    response = client.get("/api/v1/test_clock")

    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_the_bearer_scheme_is_case_insensitive(
    make_api_key: Callable[..., tuple[ApiKey, str]], clock: Any
) -> None:
    _, plaintext = make_api_key(scopes=["read"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"bearer {plaintext}")

    assert client.get("/api/v1/test_clock").status_code == 200


def test_a_key_records_when_it_was_last_used(
    make_api_key: Callable[..., tuple[ApiKey, str]], clock: Any
) -> None:
    key, plaintext = make_api_key(scopes=["read"])
    assert key.last_used_at is None
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")

    client.get("/api/v1/test_clock")

    key.refresh_from_db()
    assert key.last_used_at is not None
