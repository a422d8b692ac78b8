"""Fixtures for the tests of the deployment settings and the embedded developer runner."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.embedded import BASE_DIR

PYTHON = sys.executable


def processes_under(directory: Path) -> list[tuple[int, str]]:
    """Live processes whose working directory is inside `directory`, as (pid, name).

    The embedded servers are found this way because both chdir into their data directory
    (postgres into pg/, redis into redis/), whatever names they give themselves in `ps`.
    """
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cwd = Path(os.readlink(proc / "cwd"))
            state = (proc / "stat").read_text().rpartition(")")[2].split()[0]
            name = (proc / "comm").read_text().strip()
        except OSError:  # exited meanwhile
            continue
        if state != "Z" and cwd.is_relative_to(directory):
            found.append((int(proc.name), name))
    return found


def processes_in_session(session_id: int) -> list[tuple[int, str]]:
    """Live processes in the given session, as (pid, name)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rpartition(")")[2].split()
            name = (proc / "comm").read_text().strip()
        except OSError:
            continue
        state, session = fields[0], int(fields[3])
        if state != "Z" and session == session_id:
            found.append((int(proc.name), name))
    return found


def runner_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a fresh machine: no DATABASE_URL / REDIS_URL, data in `data_dir`."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(EMBEDDED_DATA_DIR=str(data_dir), PYTHONPATH=str(BASE_DIR), **extra)
    return env


@pytest.fixture
def embedded_data_dir() -> Iterator[Path]:
    """A short data directory in /tmp (unix socket paths must stay under ~100 characters).

    Whatever a failing test left running there is killed afterwards.
    """
    directory = Path(tempfile.mkdtemp(prefix="emb", dir="/tmp"))
    yield directory
    for pid, _ in processes_under(directory):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
    shutil.rmtree(directory, ignore_errors=True)
