"""Fixtures for the core tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from core import clock


@pytest.fixture
def daily_work() -> Iterator[Callable[[str, clock.DailyWork], None]]:
    """Register daily work for one test: `daily_work("name", fn)`; removed afterwards."""
    names: list[str] = []

    def register(name: str, work: clock.DailyWork) -> None:
        clock.register_daily_work(name, work)
        names.append(name)

    yield register
    for name in names:
        clock.unregister_daily_work(name)
