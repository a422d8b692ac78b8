"""Fixtures for the API platform tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from core import clock as platform_clock
from core.actors import SYSTEM
from customers.models import Partner
from customers.services import partner_create


@pytest.fixture
def daily_work() -> Iterator[Callable[[str, platform_clock.DailyWork], None]]:
    """Register daily work for one test: `daily_work("name", fn)`; removed afterwards."""
    names: list[str] = []

    def register(name: str, work: platform_clock.DailyWork) -> None:
        platform_clock.register_daily_work(name, work)
        names.append(name)

    yield register
    for name in names:
        platform_clock.unregister_daily_work(name)


@pytest.fixture
def partner(clock: Any) -> Partner:
    return partner_create(code="acme", name="Acme Resellers", actor=SYSTEM)
