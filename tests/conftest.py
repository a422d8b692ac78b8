"""Fixtures shared by the whole suite: a fixed platform clock and API clients with keys."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from api.models import ApiKey
from api.services import api_key_create
from core.actors import SYSTEM
from core.services import test_clock_set
from customers.models import Partner

FIXED_NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _test_mode(settings: Any) -> Iterator[None]:
    settings.TEST_MODE = True
    # Real password hashing costs ~0.3 s per login; tests only need it to be correct.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def clock(db: None) -> Callable[[datetime], datetime]:
    """Set the platform clock: `clock(datetime(2026, 1, 31, tzinfo=UTC))`. Starts at FIXED_NOW."""
    test_clock_set(to=FIXED_NOW)
    return lambda at: test_clock_set(to=at)


@pytest.fixture
def make_api_key(db: None) -> Callable[..., tuple[ApiKey, str]]:
    def make(
        scopes: list[str] | None = None,
        partner: Partner | None = None,
        rate_limit_per_minute: int | None = None,
    ) -> tuple[ApiKey, str]:
        return api_key_create(
            name="test key",
            scopes=scopes or ["admin"],
            partner=partner,
            rate_limit_per_minute=rate_limit_per_minute,
            actor=SYSTEM,
        )

    return make


@pytest.fixture
def api_client_for(make_api_key: Callable[..., tuple[ApiKey, str]]) -> Callable[..., APIClient]:
    """An authenticated DRF test client: `api_client_for(scopes=["read"], partner=p)`."""

    def make(**kwargs: Any) -> APIClient:
        _, plaintext = make_api_key(**kwargs)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
        return client

    return make


@pytest.fixture
def api(api_client_for: Callable[..., APIClient], clock: Any) -> APIClient:
    """A client with an admin key and the clock fixed at FIXED_NOW."""
    return api_client_for(scopes=["admin"])
