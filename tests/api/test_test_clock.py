from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def test_test_clock_reads_the_stored_time(api: APIClient) -> None:
    response = api.get("/api/v1/test_clock")

    assert response.status_code == 200
    assert response.json() == {"now": "2026-01-15T12:00:00Z", "today": "2026-01-15"}


def test_advance_moves_forward_and_reports_days(api: APIClient) -> None:
    response = api.post("/api/v1/test_clock/advance", {"to": "2026-03-01T00:00:00Z"}, format="json")

    assert response.status_code == 200, response.json()
    assert response.json()["now"] == "2026-03-01T00:00:00Z"
    assert api.get("/api/v1/test_clock").json()["today"] == "2026-03-01"


def test_advance_refuses_to_go_back(api: APIClient) -> None:
    response = api.post("/api/v1/test_clock/advance", {"to": "2025-01-01T00:00:00Z"}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "clock_backwards"
    assert response.json()["error"]["param"] == "to"


def test_advance_needs_admin_scope(api_client_for: Any, clock: Any) -> None:
    client = api_client_for(scopes=["write"])

    response = client.post(
        "/api/v1/test_clock/advance", {"to": "2026-03-01T00:00:00Z"}, format="json"
    )

    assert response.status_code == 403
    assert response.json()["error"]["type"] == "permission_error"


def test_test_clock_is_absent_outside_test_mode(api: APIClient, settings: Any) -> None:
    settings.TEST_MODE = False

    assert api.get("/api/v1/test_clock").status_code == 404
    response = api.post("/api/v1/test_clock/advance", {"to": "2027-01-01T00:00:00Z"}, format="json")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "test_mode_off"
