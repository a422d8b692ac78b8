"""The OpenAPI spec is warning-free and valid; the docs pages run on local files only."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema

from tests.api.routes import EXEMPT_PATHS, api_routes

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    GENERATOR_STATS.reset()
    generated = SchemaGenerator().get_schema(request=None, public=True)
    warnings = dict(GENERATOR_STATS._warn_cache)
    errors = dict(GENERATOR_STATS._error_cache)
    GENERATOR_STATS.reset()
    assert warnings == {}
    assert errors == {}
    return generated


def test_the_schema_generates_without_warnings_and_validates(schema: dict[str, Any]) -> None:
    validate_schema(schema)  # raises on an invalid OpenAPI 3 document

    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "Subscription platform API"


def test_the_api_key_security_scheme_guards_every_operation(schema: dict[str, Any]) -> None:
    assert schema["components"]["securitySchemes"]["ApiKeyAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "API key",
    }
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if path in EXEMPT_PATHS:  # authenticated otherwise (see tests/api/routes.py)
                assert {"ApiKeyAuth": []} not in operation.get("security", []), (path, method)
                continue
            assert {"ApiKeyAuth": []} in operation["security"], (path, method)
            assert {} not in operation["security"], (path, method)  # never anonymous


def test_every_api_route_is_documented(schema: dict[str, Any]) -> None:
    documented = {
        re.sub(r"\{[^}]+\}", "{}", path): {m.upper() for m in operations}
        for path, operations in schema["paths"].items()
    }
    for route in api_routes():
        template = route.path
        for _ in route.parameters:
            template = template.replace("999999999", "{}", 1)
        assert template in documented, template
        methods = {m for m in route.methods if m not in ("HEAD", "OPTIONS")}
        assert methods <= documented[template], (template, methods)


def test_the_platform_endpoints_are_described(schema: dict[str, Any]) -> None:
    audit_log = schema["paths"]["/api/v1/audit_log"]["get"]
    parameters = {p["name"] for p in audit_log["parameters"]}

    assert audit_log["operationId"] == "audit_log_list"
    assert parameters == {
        "object_type",
        "object_id",
        "action",
        "request_id",
        "actor_type",
        "actor_id",
        "cursor",
        "limit",
    }
    assert schema["paths"]["/api/v1/test_clock/advance"]["post"]["operationId"] == (
        "test_clock_advance"
    )
    # The base classes' internals never leak into the descriptions.
    for operations in schema["paths"].values():
        for operation in operations.values():
            assert "Idempotency-Key contract" not in operation.get("description", "")


class _Assets(HTMLParser):
    """Collects every URL a page makes the browser load."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value and name in ("src", "href"):
                self.urls.append(value)


@pytest.mark.parametrize("page", ["/api/docs/", "/api/redoc/"])
def test_the_docs_pages_load_only_local_files(client: Any, page: str) -> None:
    response = client.get(page)

    assert response.status_code == 200
    html = response.content.decode()
    assert "cdn" not in html.lower()
    assert "https://" not in html
    assert "http://" not in html
    assets = _Assets()
    assets.feed(html)
    scripts = [url for url in assets.urls if url.endswith(".js")]
    assert scripts, "the page loads its UI from script files"
    static_prefix = f"/{settings.STATIC_URL.strip('/')}/drf_spectacular_sidecar/"
    for url in assets.urls:
        assert not url.startswith("//"), url
        assert url.startswith(static_prefix), url
        # The file ships with drf-spectacular-sidecar, so collectstatic and WhiteNoise serve it.
        relative = url.removeprefix(f"/{settings.STATIC_URL.strip('/')}/")
        assert finders.find(relative) is not None, relative


def test_the_docs_pages_point_at_the_local_schema(client: Any) -> None:
    swagger = client.get("/api/docs/").content.decode()
    redoc = client.get("/api/redoc/").content.decode()

    assert '"/api/schema/"' in swagger
    assert 'spec-url="/api/schema/"' in redoc


def test_the_schema_endpoint_serves_the_spec(client: Any) -> None:
    response = client.get("/api/schema/", headers={"Accept": "application/vnd.oai.openapi+json"})

    assert response.status_code == 200
    assert "/api/v1/audit_log" in response.json()["paths"]
