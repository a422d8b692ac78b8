"""Fixtures of the notification tests: a real SMTP server on 127.0.0.1 that answers as told,
and Django's SMTP email backend pointed at it."""

from __future__ import annotations

import email
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

import pytest


@dataclass
class SmtpServer:
    """Records every message it accepts; `refuse_recipient` and `refuse_data` queue answers
    (an SMTP reply line such as "550 5.1.1 No such user") for the next RCPT and DATA."""

    port: int = 0
    messages: list[Message] = field(default_factory=list)
    recipients: list[list[str]] = field(default_factory=list)
    rcpt_replies: list[str] = field(default_factory=list)
    data_replies: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def refuse_recipient(self, *replies: str) -> None:
        with self.lock:
            self.rcpt_replies.extend(replies)

    def refuse_data(self, *replies: str) -> None:
        with self.lock:
            self.data_replies.extend(replies)

    def next_reply(self, queue: list[str], default: str) -> str:
        with self.lock:
            return queue.pop(0) if queue else default


def _handler(server: SmtpServer) -> type[socketserver.StreamRequestHandler]:
    class Handler(socketserver.StreamRequestHandler):
        def reply(self, line: str) -> None:
            self.wfile.write(f"{line}\r\n".encode())
            self.wfile.flush()

        def handle(self) -> None:
            self.reply("220 127.0.0.1 test SMTP ready")
            recipients: list[str] = []
            while True:
                raw = self.rfile.readline()
                if not raw:
                    return
                command = raw.decode().strip()
                verb = command.split(" ", 1)[0].upper()
                if verb == "EHLO":
                    self.reply("250-127.0.0.1")
                    self.reply("250 8BITMIME")
                elif verb in ("HELO", "NOOP"):
                    self.reply("250 OK")
                elif verb == "RSET" or verb == "MAIL":
                    recipients = []
                    self.reply("250 OK")
                elif verb == "RCPT":
                    answer = server.next_reply(server.rcpt_replies, "250 OK")
                    if answer.startswith("250"):
                        recipients.append(command.split(":", 1)[1].strip(" <>"))
                    self.reply(answer)
                elif verb == "DATA":
                    self.reply("354 End data with <CR><LF>.<CR><LF>")
                    lines = []
                    while (line := self.rfile.readline()) not in (b".\r\n", b""):
                        lines.append(line[1:] if line.startswith(b"..") else line)
                    answer = server.next_reply(server.data_replies, "250 OK queued")
                    if answer.startswith("250"):
                        with server.lock:
                            server.messages.append(email.message_from_bytes(b"".join(lines)))
                            server.recipients.append(list(recipients))
                    self.reply(answer)
                elif verb == "QUIT":
                    self.reply("221 Bye")
                    return
                else:
                    self.reply("502 Command not implemented")

    return Handler


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer()
    tcp = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _handler(server))
    tcp.daemon_threads = True
    server.port = tcp.server_address[1]
    thread = threading.Thread(target=tcp.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    tcp.shutdown()
    tcp.server_close()
    thread.join(timeout=5)


@pytest.fixture
def smtp(settings: Any, smtp_server: SmtpServer) -> SmtpServer:
    """Django sends through its SMTP backend to `smtp_server` (as EMAIL_URL=smtp://... does)."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = smtp_server.port
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 5
    return smtp_server
