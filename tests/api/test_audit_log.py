"""The audit trail through the API: who wrote, from which request, and the list endpoint."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from api.models import ApiKey
from core.actors import SYSTEM, Actor
from core.models import AuditLog
from core.models import TestClock as StoredClock
from core.services import audit_record

pytestmark = pytest.mark.django_db

GENERATED_ID = re.compile(r"^req_[0-9a-f]{32}$")


@pytest.fixture
def admin(make_api_key: Callable[..., tuple[ApiKey, str]], clock: Any) -> tuple[ApiKey, APIClient]:
    key, plaintext = make_api_key(scopes=["admin"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    return key, client


def _advance(client: APIClient, to: str, **headers: str) -> Any:
    return client.post("/api/v1/test_clock/advance", {"to": to}, format="json", headers=headers)


def test_a_write_through_the_api_names_the_key_and_the_request(
    admin: tuple[ApiKey, APIClient],
) -> None:
    key, client = admin

    response = _advance(client, "2026-02-01T00:00:00Z", **{"X-Request-ID": "trace-42.a:b_c"})

    assert response.status_code == 200
    assert response["X-Request-ID"] == "trace-42.a:b_c"
    entry = AuditLog.objects.get(action="test_clock.advance")
    assert (entry.actor_type, entry.actor_id, entry.actor_label) == (
        "api_key",
        str(key.pk),
        str(key),
    )
    assert (entry.object_type, entry.object_id) == ("core.testclock", "1")
    assert entry.before == {"frozen_time": "2026-01-15T12:00:00+00:00"}
    assert entry.after == {"frozen_time": "2026-02-01T00:00:00+00:00"}
    assert entry.request_id == "trace-42.a:b_c"


@pytest.mark.parametrize(
    "sent", [None, "", "has space", "x" * 65, "semi;colon", "ünïcode", "<script>", "trace\n"]
)
def test_a_missing_or_malformed_request_id_is_replaced_by_a_generated_one(
    admin: tuple[ApiKey, APIClient], sent: str | None
) -> None:
    _, client = admin
    headers = {"X-Request-ID": sent} if sent is not None else {}

    response = _advance(client, "2026-02-01T00:00:00Z", **headers)

    request_id = response["X-Request-ID"]
    assert GENERATED_ID.match(request_id)
    assert request_id != sent
    assert AuditLog.objects.get(action="test_clock.advance").request_id == request_id


def test_every_response_carries_a_request_id_even_errors_and_other_pages(client: Any) -> None:
    unauthenticated = APIClient().get("/api/v1/audit_log", headers={"X-Request-ID": "r-1"})
    page = client.get("/no-such-page")

    assert unauthenticated.status_code == 401
    assert unauthenticated["X-Request-ID"] == "r-1"
    assert GENERATED_ID.match(page["X-Request-ID"])


def test_each_request_gets_its_own_generated_id(admin: tuple[ApiKey, APIClient]) -> None:
    _, client = admin

    first = client.get("/api/v1/test_clock")["X-Request-ID"]
    second = client.get("/api/v1/test_clock")["X-Request-ID"]

    assert first != second


def test_the_audit_log_lists_an_entry_in_full(admin: tuple[ApiKey, APIClient]) -> None:
    key, client = admin
    _advance(client, "2026-02-01T00:00:00Z", **{"X-Request-ID": "trace-1"})
    entry = AuditLog.objects.get(action="test_clock.advance")

    response = client.get("/api/v1/audit_log", {"request_id": "trace-1"})

    assert response.status_code == 200
    assert response.json() == {
        "next": None,
        "previous": None,
        "results": [
            {
                "id": entry.pk,
                "occurred_at": "2026-02-01T00:00:00Z",
                "actor": {"type": "api_key", "id": str(key.pk), "label": str(key)},
                "action": "test_clock.advance",
                "object": {
                    "type": "core.testclock",
                    "id": "1",
                    "repr": "test clock at 2026-02-01T00:00:00+00:00",
                },
                "before": {"frozen_time": "2026-01-15T12:00:00+00:00"},
                "after": {"frozen_time": "2026-02-01T00:00:00+00:00"},
                "request_id": "trace-1",
            }
        ],
    }


def _record(action: str, *, actor: Actor = SYSTEM, n: int = 0) -> AuditLog:
    return audit_record(
        actor=actor,
        action=action,
        instance=StoredClock.objects.get(id=1),
        after={"n": n},
    )


def test_the_audit_log_filters_by_exact_match(admin: tuple[ApiKey, APIClient]) -> None:
    key, client = admin
    _advance(client, "2026-02-01T00:00:00Z", **{"X-Request-ID": "trace-a"})
    _advance(client, "2026-02-02T00:00:00Z", **{"X-Request-ID": "trace-b"})
    other = _record("test_clock.inspect")

    def ids(**filters: str) -> list[int]:
        response = client.get("/api/v1/audit_log", filters)
        assert response.status_code == 200, response.json()
        return [row["id"] for row in response.json()["results"]]

    advances = list(
        AuditLog.objects.filter(action="test_clock.advance")
        .order_by("-id")
        .values_list("id", flat=True)
    )
    assert len(advances) == 2
    assert ids(action="test_clock.advance") == advances
    assert ids(action="test_clock") == []  # exact, not a prefix
    assert ids(request_id="trace-b") == advances[:1]
    assert ids(object_type="core.testclock", object_id="1") == [other.pk, *advances]
    assert ids(object_type="core.testclock", object_id="2") == []
    assert ids(actor_type="api_key", actor_id=str(key.pk)) == advances
    assert ids(actor_type="system", action="test_clock.inspect") == [other.pk]
    api_key_entries = ids(object_type="api.apikey")
    assert api_key_entries == [
        AuditLog.objects.get(action="api_key.create", object_id=str(key.pk)).pk
    ]


def test_an_unknown_actor_type_filter_is_a_validation_error(
    admin: tuple[ApiKey, APIClient],
) -> None:
    _, client = admin

    response = client.get("/api/v1/audit_log", {"actor_type": "robot"})

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "actor_type"
    assert response.json()["error"]["code"] == "invalid_choice"


def test_the_audit_log_is_read_only(admin: tuple[ApiKey, APIClient]) -> None:
    _, client = admin
    before = AuditLog.objects.count()

    for method in ("post", "put", "patch", "delete"):
        response = getattr(client, method)("/api/v1/audit_log", {}, format="json")
        assert response.status_code == 405, method
        assert response.json()["error"]["code"] == "method_not_allowed"

    assert AuditLog.objects.count() == before


# --- cursor pagination ---------------------------------------------------------------------


def _page(client: APIClient, url: str, **params: Any) -> dict[str, Any]:
    response = client.get(url, params)
    assert response.status_code == 200, response.json()
    return response.json()


def test_pages_follow_next_links_newest_first_without_gaps_or_duplicates_under_inserts(
    admin: tuple[ApiKey, APIClient],
) -> None:
    _, client = admin
    originals = [_record("page.test", n=n).pk for n in range(7)]
    newest_first = originals[::-1]

    seen: list[int] = []
    page = _page(client, "/api/v1/audit_log", action="page.test", limit=3)
    assert page["previous"] is None
    pages = 0
    while True:
        pages += 1
        seen.extend(row["id"] for row in page["results"])
        # Rows written meanwhile land before the cursor, so they never shift later pages.
        _record("page.test", n=100 + pages)
        if page["next"] is None:
            break
        assert "limit=3" in page["next"]
        page = _page(client, page["next"])

    assert pages == 3
    assert seen == newest_first


def test_the_previous_link_leads_back_to_the_page_before(
    admin: tuple[ApiKey, APIClient],
) -> None:
    _, client = admin
    originals = [_record("page.test", n=n).pk for n in range(5)]
    first = _page(client, "/api/v1/audit_log", action="page.test", limit=2)
    second = _page(client, first["next"])

    back = _page(client, second["previous"])

    assert [row["id"] for row in first["results"]] == originals[:-3:-1]
    assert [row["id"] for row in second["results"]] == originals[-3:-5:-1]
    assert [row["id"] for row in back["results"]] == [row["id"] for row in first["results"]]


def test_the_default_page_holds_50(admin: tuple[ApiKey, APIClient]) -> None:
    _, client = admin
    for n in range(51):
        _record("page.test", n=n)

    page = _page(client, "/api/v1/audit_log", action="page.test")

    assert len(page["results"]) == 50
    assert page["next"] is not None


@pytest.mark.parametrize("limit", ["0", "-1", "201", "abc", "2.5", "", "²"])
def test_a_limit_outside_1_to_200_is_refused(admin: tuple[ApiKey, APIClient], limit: str) -> None:
    _, client = admin

    response = client.get("/api/v1/audit_log", {"limit": limit})

    assert response.status_code == 400
    assert response.json()["error"] == {
        "type": "invalid_request_error",
        "code": "invalid_limit",
        "message": "limit is a whole number from 1 to 200.",
        "param": "limit",
    }


def test_limit_200_is_allowed(admin: tuple[ApiKey, APIClient]) -> None:
    _, client = admin

    assert client.get("/api/v1/audit_log", {"limit": "200"}).status_code == 200


def test_a_forged_cursor_is_refused(admin: tuple[ApiKey, APIClient]) -> None:
    _, client = admin

    response = client.get("/api/v1/audit_log", {"cursor": "not-a-cursor"})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_cursor"
    assert response.json()["error"]["param"] == "cursor"
