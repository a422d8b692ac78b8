"""Fixtures of the webhook tests: a real HTTP receiver, Celery in eager mode, endpoints,
partners and customers made through the services."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from config.celery import app as celery_app
from core.actors import Actor
from core.webhooks.models import WebhookEndpoint
from core.webhooks.services import webhook_endpoint_create
from customers.models import Customer, Partner
from customers.services import customer_create, partner_create

STAFF = Actor(type="user", id="7", label="alice")


@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 that records every request and answers as told."""

    url: str
    requests: list[ReceivedRequest] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answers to come, then 200
    response_body: bytes = b'{"ok": true}'
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def respond(self, *statuses: int) -> None:
        self.statuses.extend(statuses)

    def next_status(self) -> int:
        with self.lock:
            return self.statuses.pop(0) if self.statuses else 200


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with receiver.lock:
                receiver.requests.append(
                    ReceivedRequest("POST", self.path, dict(self.headers.items()), body)
                )
            if receiver.delay:
                time.sleep(receiver.delay)
            status = receiver.next_status()
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", "/elsewhere")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(receiver.response_body)))
            self.end_headers()
            self.wfile.write(receiver.response_body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver(url="")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture(autouse=True)
def _celery_eager(settings: Any) -> Iterator[None]:
    """Tasks run in the calling thread (the lead's end-to-end test uses a real worker)."""
    conf = celery_app.conf
    previous = (conf.task_always_eager, conf.task_eager_propagates)
    # The app reads Django's CELERY_-prefixed settings: set the keys under that name.
    conf.CELERY_TASK_ALWAYS_EAGER = True
    conf.CELERY_TASK_EAGER_PROPAGATES = True
    settings.WEBHOOK_ALERT_EMAILS = ["ops@example.com"]
    yield
    conf.CELERY_TASK_ALWAYS_EAGER, conf.CELERY_TASK_EAGER_PROPAGATES = previous


@pytest.fixture
def make_endpoint(clock: Any, receiver: Receiver) -> Callable[..., WebhookEndpoint]:
    def make(**fields: Any) -> WebhookEndpoint:
        fields.setdefault("url", receiver.url)
        fields.setdefault("enabled_events", ["*"])
        return webhook_endpoint_create(actor=STAFF, **fields)

    return make


@pytest.fixture
def make_partner(clock: Any) -> Callable[..., Partner]:
    def make(code: str = "acme", **fields: Any) -> Partner:
        fields.setdefault("name", code.title())
        fields.setdefault("contact_email", f"hooks@{code}.example")
        return partner_create(code=code, actor=STAFF, **fields)

    return make


@pytest.fixture
def make_customer(clock: Any) -> Callable[..., Customer]:
    counter = iter(range(1, 10_000))

    def make(**fields: Any) -> Customer:
        number = next(counter)
        fields.setdefault("external_id", f"ext-{number}")
        fields.setdefault("email", f"customer{number}@example.com")
        fields.setdefault("name", f"Customer {number}")
        return customer_create(actor=STAFF, **fields)

    return make
