"""What every benchmark needs: a throwaway database and latency statistics."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.db import connection
from django.test.utils import setup_test_environment, teardown_test_environment


@contextmanager
def throwaway_database() -> Iterator[str]:
    """A freshly migrated database of its own, dropped afterwards; yields its name.

    The name carries the pid, so a benchmark never clobbers a test run's `test_*` database on
    the same server, nor another benchmark's.
    """
    setup_test_environment()
    connection.settings_dict.setdefault("TEST", {})["NAME"] = f"bench_{os.getpid()}"
    original_name = connection.settings_dict["NAME"]
    name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        yield name
    finally:
        connection.creation.destroy_test_db(original_name, verbosity=0)
        teardown_test_environment()


@dataclass(frozen=True)
class Sample:
    """The latencies of `len(durations_ns)` sequential calls and the wall time they took."""

    label: str
    durations_ns: list[int]
    wall_seconds: float

    @property
    def per_second(self) -> float:
        return len(self.durations_ns) / self.wall_seconds

    def percentile_ms(self, percent: float) -> float:
        """Nearest-rank percentile, in milliseconds."""
        ordered = sorted(self.durations_ns)
        rank = max(1, -(-len(ordered) * percent // 100))  # ceil without floats drifting
        return ordered[int(rank) - 1] / 1e6


def measure(label: str, call: Callable[[], object], count: int) -> Sample:
    durations = []
    started = time.perf_counter()
    for _ in range(count):
        before = time.perf_counter_ns()
        call()
        durations.append(time.perf_counter_ns() - before)
    return Sample(label, durations, time.perf_counter() - started)


def merge(label: str, samples: list[Sample]) -> Sample:
    return Sample(
        label,
        [duration for sample in samples for duration in sample.durations_ns],
        sum(sample.wall_seconds for sample in samples),
    )
