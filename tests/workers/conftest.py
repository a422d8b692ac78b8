"""Real Celery workers for the worker tests: `celery -A config worker -P solo` processes on the
pytest-django test database and a Redis db of their own (flushed first), in TEST_MODE so they
read the same test clock. Tests here use `django_db(transaction=True)`: a worker only sees
committed rows."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.renewals import Worker, flush_broker
from config.celery import app as celery_app


@pytest.fixture
def broker(settings: Any) -> Iterator[str]:
    """The broker the test process publishes to (REDIS_URL: give the tests a Redis db of their
    own, it is flushed), for real: eager mode off."""
    url = settings.CELERY_BROKER_URL
    if not url.startswith("redis://"):
        pytest.skip("the worker tests need a Redis broker (REDIS_URL)")
    flush_broker(url)
    conf = celery_app.conf
    previous = (conf.task_always_eager, conf.CELERY_TASK_ALWAYS_EAGER)
    settings.CELERY_TASK_ALWAYS_EAGER = False
    conf.task_always_eager = False
    conf.CELERY_TASK_ALWAYS_EAGER = False
    yield url
    conf.task_always_eager, conf.CELERY_TASK_ALWAYS_EAGER = previous
    flush_broker(url)


@pytest.fixture
def start_worker(broker: str) -> Iterator[Callable[[str], Worker]]:
    """`start_worker("w1")`: a ready worker process; every one is stopped at the end."""
    log_dir = Path(tempfile.mkdtemp(prefix="worker-tests-"))
    started: list[Worker] = []

    def start(name: str) -> Worker:
        worker = Worker(name, redis_url=broker, log_dir=log_dir)
        started.append(worker)
        worker.wait_ready()
        return worker

    yield start
    for worker in started:
        if worker.process.poll() is None:
            worker.stop()
