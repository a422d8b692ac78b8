"""API keys: the admin (create shows the key once, revoke) and `manage.py create_api_key`."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from rest_framework.test import APIClient

from api.models import ApiKey
from core.actors import SYSTEM
from core.models import AuditLog
from customers.models import Partner
from customers.services import partner_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme(clock: Any) -> Partner:
    return partner_create(code="acme", name="Acme", actor=SYSTEM)


def _client(plaintext: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    return client


def test_the_add_form_offers_scopes_as_checkboxes(admin_client: Client) -> None:
    response = admin_client.get("/admin/api/apikey/add/")

    assert response.status_code == 200
    html = response.content.decode()
    for scope in ("read", "write", "admin"):
        assert f'type="checkbox" name="scopes" value="{scope}"' in html
    assert "key_hash" not in html


def test_adding_a_key_shows_it_once_and_it_works(
    admin_client: Client, admin_user: Any, acme: Partner
) -> None:
    response = admin_client.post(
        "/admin/api/apikey/add/",
        {
            "name": "Acme CRM",
            "scopes": ["read", "write"],
            "partner": str(acme.pk),
            "rate_limit_per_minute": "30",
        },
        follow=True,
    )

    assert response.redirect_chain == [("/admin/api/apikey/", 302)]
    [shown] = [m.message for m in response.context["messages"] if "API key created" in m.message]
    plaintext = shown.split("API key created: ")[1].split(" ")[0]
    assert response.content.decode().count(plaintext) == 1
    key = ApiKey.objects.get()
    assert key.key_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    assert key.prefix == plaintext[:16]
    assert (key.name, key.scopes, key.partner_id, key.rate_limit_per_minute) == (
        "Acme CRM",
        ["read", "write"],
        acme.pk,
        30,
    )
    assert key.created_by_id == admin_user.pk
    assert key.created_at == datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
    assert _client(plaintext).get("/api/v1/test_clock").status_code == 200
    [entry] = AuditLog.objects.filter(action="api_key.create")
    assert (entry.actor_type, entry.actor_label) == ("user", "admin")
    change_page = admin_client.get(f"/admin/api/apikey/{key.pk}/change/").content.decode()
    listing = admin_client.get("/admin/api/apikey/").content.decode()
    for page in (change_page, listing):
        assert plaintext not in page
        assert key.key_hash not in page
    assert key.prefix in listing


def test_a_key_needs_a_name_and_a_scope(admin_client: Client, clock: Any) -> None:
    response = admin_client.post("/admin/api/apikey/add/", {"name": "", "scopes": []})

    assert response.status_code == 200
    assert set(response.context["adminform"].form.errors) == {"name", "scopes"}
    assert ApiKey.objects.count() == 0


def test_only_name_and_rate_limit_can_be_changed(
    admin_client: Client, make_api_key: Any, clock: Any
) -> None:
    key, _ = make_api_key(scopes=["read"])

    response = admin_client.post(
        f"/admin/api/apikey/{key.pk}/change/",
        {
            "name": "Renamed",
            "rate_limit_per_minute": "10",
            "scopes": ["admin"],
            "prefix": "sk_test_forged00",
            "key_hash": "0" * 64,
        },
    )

    assert response.status_code == 302
    stored = ApiKey.objects.get(pk=key.pk)
    assert (stored.name, stored.rate_limit_per_minute) == ("Renamed", 10)
    assert (stored.scopes, stored.prefix, stored.key_hash) == (
        ["read"],
        key.prefix,
        key.key_hash,
    )
    [entry] = AuditLog.objects.filter(action="apikey.update")
    assert entry.before is not None
    assert entry.after is not None
    assert (entry.before["name"], entry.after["name"]) == ("test key", "Renamed")


def test_the_revoke_action_stops_the_keys(
    admin_client: Client, make_api_key: Any, clock: Any
) -> None:
    revoked, revoked_plaintext = make_api_key(scopes=["read"])
    kept, kept_plaintext = make_api_key(scopes=["read"])

    response = admin_client.post(
        "/admin/api/apikey/", {"action": "revoke", "_selected_action": [str(revoked.pk)]}
    )

    assert response.status_code == 302
    assert ApiKey.objects.get(pk=revoked.pk).revoked_at == datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
    assert ApiKey.objects.get(pk=kept.pk).revoked_at is None
    assert _client(revoked_plaintext).get("/api/v1/test_clock").status_code == 401
    assert _client(kept_plaintext).get("/api/v1/test_clock").status_code == 200
    assert AuditLog.objects.filter(action="api_key.revoke", object_id=str(revoked.pk)).count() == 1


def test_keys_cannot_be_deleted(admin_client: Client, make_api_key: Any) -> None:
    key, _ = make_api_key()

    assert admin_client.get(f"/admin/api/apikey/{key.pk}/delete/").status_code == 403
    assert ApiKey.objects.filter(pk=key.pk).exists()


# --- manage.py create_api_key -----------------------------------------------------------------


def test_the_command_prints_a_working_key_once(acme: Partner) -> None:
    out = io.StringIO()

    call_command(
        "create_api_key",
        "--name",
        "Acme sync",
        "--scope",
        "read",
        "--scope",
        "write",
        "--partner",
        "acme",
        "--rate-limit",
        "120",
        stdout=out,
    )

    lines = out.getvalue().splitlines()
    [plaintext] = [line for line in lines if line.startswith("sk_test_")]
    key = ApiKey.objects.get()
    assert lines[0] == (
        f"Created API key 'Acme sync' ({key.prefix}…): scopes read, write; partner acme; "
        "rate limit 120/min."
    )
    assert key.key_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    assert (key.scopes, key.partner_id, key.rate_limit_per_minute) == (
        ["read", "write"],
        acme.pk,
        120,
    )
    response = _client(plaintext).get("/api/v1/test_clock")
    assert response.status_code == 200
    assert response.json()["now"] == "2026-01-15T12:00:00Z"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--partner", "nope"], "No such partner: 'nope'."),
        (["--rate-limit", "0"], "--rate-limit must be at least 1."),
        (["--name", " "], "A key needs a name."),
    ],
)
def test_the_command_refuses_bad_input_and_creates_nothing(
    acme: Partner, args: list[str], message: str
) -> None:
    with pytest.raises(CommandError) as error:
        call_command(
            "create_api_key", "--name", "k", "--scope", "read", *args, stdout=io.StringIO()
        )

    assert str(error.value) == message
    assert ApiKey.objects.count() == 0


def test_the_command_refuses_an_unknown_scope(clock: Any) -> None:
    with pytest.raises(CommandError):
        call_command("create_api_key", "--name", "k", "--scope", "root", stdout=io.StringIO())

    assert ApiKey.objects.count() == 0
