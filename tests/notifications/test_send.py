"""notification_send: claimed once by its key, rendered from the templates, sent through
Django's email backend, logged with its outcome; retries of what the mail server refused."""

from __future__ import annotations

import socket
import threading
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from core.errors import ValidationError
from core.notifications.models import Notification
from core.notifications.services import notification_send, notifications_send_due
from tests.conftest import FIXED_NOW
from tests.notifications.conftest import SmtpServer

pytestmark = pytest.mark.django_db

CONTEXT = {
    "customer_name": "Ada Lovelace",
    "plan_name": "Gold yearly",
    "subscription_id": 42,
    "renews_on": date(2026, 2, 14),
    "renews_for": "year",
    "charged_on": date(2026, 2, 14),
    "charged_on_renewal": True,
    "interval": "year",
    "amount": "1200.00 USD",
    "addons": [],
}


def send(**overrides: Any) -> Notification | None:
    arguments: dict[str, Any] = {
        "kind": "renewal_notice",
        "dedupe_key": "renewal_notice:42:2026-02-14",
        "to": "ada@example.com",
        "subject": "Your Gold yearly subscription renews on February 14, 2026",
        "template": "renewal_notice",
        "context": CONTEXT,
        "customer_id": 7,
        "related": ("subscriptions.subscription", 42),
    }
    return notification_send(**{**arguments, **overrides})


def test_a_notice_is_rendered_sent_and_logged(clock: Any, settings: Any) -> None:
    settings.DEFAULT_FROM_EMAIL = "billing@platform.example"
    settings.PORTAL_BASE_URL = "https://billing.example.com"

    notification = send()

    assert notification is not None
    (message,) = mail.outbox
    assert message.to == ["ada@example.com"]
    assert message.from_email == "billing@platform.example"
    assert message.subject == "Your Gold yearly subscription renews on February 14, 2026"
    assert "On that day we will charge 1200.00 USD." in message.body
    assert "go to your account: https://billing.example.com/portal/" in message.body
    ((html, mimetype),) = message.alternatives  # type: ignore[attr-defined]
    assert mimetype == "text/html"
    assert '<a href="https://billing.example.com/portal/">go to your account</a>' in html
    assert "<strong>1200.00 USD</strong>" in html
    assert message.extra_headers["Message-ID"].startswith(f"<notification.{notification.pk}.")
    assert message.extra_headers["Message-ID"].endswith("@platform.example>")
    assert message.extra_headers["X-Notification-Kind"] == "renewal_notice"
    logged = Notification.objects.get()
    assert logged.kind == "renewal_notice"
    assert logged.dedupe_key == "renewal_notice:42:2026-02-14"
    assert logged.recipient == "ada@example.com"
    assert logged.subject == message.subject
    assert logged.body_text == message.body
    assert logged.body_html == html
    assert logged.template == "renewal_notice"
    assert (logged.related_type, logged.related_id, logged.customer_id) == (
        "subscriptions.subscription",
        "42",
        7,
    )
    assert logged.status == Notification.Status.SENT
    assert logged.attempts == 1
    assert logged.error == ""
    assert logged.created_at == FIXED_NOW
    assert logged.sent_at == FIXED_NOW
    assert logged.next_attempt_at is None
    assert logged.claimed_until is None


def test_a_key_already_claimed_sends_nothing_again(clock: Any) -> None:
    first = send()

    again = send(subject="Another subject", to="someone-else@example.com")

    assert first is not None
    assert again is None
    assert len(mail.outbox) == 1
    assert Notification.objects.count() == 1
    assert Notification.objects.get().recipient == "ada@example.com"


def test_a_model_instance_names_the_related_object(clock: Any) -> None:
    notification = send(related=Notification(pk=5), dedupe_key="k1")

    assert notification is not None
    assert (notification.related_type, notification.related_id) == (
        "notifications.notification",
        "5",
    )


def test_a_notice_about_nothing_in_particular_has_no_related_object(clock: Any) -> None:
    notification = send(related=None, customer_id=None, dedupe_key="k2")

    assert notification is not None
    assert (notification.related_type, notification.related_id) == ("", "")
    assert notification.customer_id is None


@pytest.mark.parametrize(
    ("overrides", "code", "param"),
    [
        ({"to": "not an address"}, "invalid_recipient", "to"),
        ({"to": ""}, "invalid_recipient", "to"),
        ({"template": "../secrets"}, "invalid_template", "template"),
        ({"template": "no_such_email"}, "unknown_template", "template"),
        ({"dedupe_key": "  "}, "invalid", "dedupe_key"),
        ({"kind": ""}, "invalid", "kind"),
        ({"subject": "x" * 301}, "too_long", "subject"),
        ({"customer_id": "7"}, "invalid_customer_id", "customer_id"),
        ({"related": ("subscriptions.subscription", "")}, "invalid", "related"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written_or_sent(
    clock: Any, overrides: dict[str, Any], code: str, param: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        send(**overrides)

    assert (refused.value.code, refused.value.param) == (code, param)
    assert Notification.objects.count() == 0
    assert mail.outbox == []


def test_a_subject_is_one_line(clock: Any) -> None:
    notification = send(subject="Your plan\r\nBcc: victim@example.com")

    assert notification is not None
    assert notification.subject == "Your plan Bcc: victim@example.com"
    assert mail.outbox[0].subject == "Your plan Bcc: victim@example.com"


def test_it_refuses_to_run_inside_a_transaction_so_the_claim_commits_before_sending(
    clock: Any,
) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        send()

    assert mail.outbox == []


def test_the_smtp_backend_delivers_to_a_real_mail_server(clock: Any, smtp: SmtpServer) -> None:
    notification = send()

    assert notification is not None
    assert notification.status == Notification.Status.SENT
    (received,) = smtp.messages
    assert smtp.recipients == [["ada@example.com"]]
    assert received["Subject"] == "Your Gold yearly subscription renews on February 14, 2026"
    assert received["Message-ID"].startswith(f"<notification.{notification.pk}.")
    assert received.is_multipart()
    parts = {part.get_content_type() for part in received.walk()}
    assert {"text/plain", "text/html"} <= parts


def test_a_refusal_is_retried_on_the_schedule_with_the_same_message(
    clock: Any, smtp: SmtpServer
) -> None:
    smtp.refuse_data("451 4.3.0 Try again later")

    notification = send()

    assert notification is not None
    assert notification.status == Notification.Status.PENDING
    assert notification.attempts == 1
    assert notification.error.startswith("Sending failed: SMTPDataError")
    assert "Try again later" in notification.error
    assert notification.next_attempt_at == FIXED_NOW + timedelta(seconds=300)
    assert notification.claimed_until is None
    assert smtp.messages == []
    # Not due yet: nothing happens.
    assert notifications_send_due() == {"sent": 0, "retrying": 0, "failed": 0}

    clock(FIXED_NOW + timedelta(seconds=300))
    assert notifications_send_due() == {"sent": 1, "retrying": 0, "failed": 0}

    notification.refresh_from_db()
    assert notification.status == Notification.Status.SENT
    assert notification.attempts == 2
    assert notification.error == ""
    assert notification.sent_at == FIXED_NOW + timedelta(seconds=300)
    (received,) = smtp.messages
    assert received["Message-ID"].startswith(f"<notification.{notification.pk}.")
    assert notifications_send_due() == {"sent": 0, "retrying": 0, "failed": 0}
    assert len(smtp.messages) == 1


def test_a_refused_recipient_fails_at_once(clock: Any, smtp: SmtpServer) -> None:
    smtp.refuse_recipient("550 5.1.1 No such user")

    notification = send()

    assert notification is not None
    assert notification.status == Notification.Status.FAILED
    assert notification.error.startswith("The mail server refused the recipient")
    assert "No such user" in notification.error
    assert notification.next_attempt_at is None
    assert notification.sent_at is None
    clock(FIXED_NOW + timedelta(days=2))
    assert notifications_send_due() == {"sent": 0, "retrying": 0, "failed": 0}
    assert smtp.messages == []


def test_when_every_retry_is_refused_the_notification_fails(
    clock: Any, smtp: SmtpServer, settings: Any
) -> None:
    settings.NOTIFICATION_RETRY_SCHEDULE = [60, 600]
    smtp.refuse_data(*["421 4.7.0 Busy"] * 3)

    notification = send()
    assert notification is not None
    clock(FIXED_NOW + timedelta(seconds=60))
    assert notifications_send_due() == {"sent": 0, "retrying": 1, "failed": 0}
    notification.refresh_from_db()
    assert notification.next_attempt_at == FIXED_NOW + timedelta(seconds=660)
    clock(FIXED_NOW + timedelta(seconds=660))
    assert notifications_send_due() == {"sent": 0, "retrying": 0, "failed": 1}

    notification.refresh_from_db()
    assert notification.status == Notification.Status.FAILED
    assert notification.attempts == 3
    assert "Busy" in notification.error
    assert notification.next_attempt_at is None
    assert smtp.messages == []


def test_an_unreachable_mail_server_is_retried(clock: Any, smtp: SmtpServer, settings: Any) -> None:
    settings.EMAIL_PORT = free_port()
    notification = send()

    assert notification is not None
    assert notification.status == Notification.Status.PENDING
    assert notification.error.startswith("Sending failed: ConnectionRefusedError")
    settings.EMAIL_PORT = smtp.port
    clock(FIXED_NOW + timedelta(seconds=300))
    assert notifications_send_due() == {"sent": 1, "retrying": 0, "failed": 0}
    assert len(smtp.messages) == 1


def free_port() -> int:
    """A local port with nothing listening on it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class SenderDied(BaseException):
    """The process ending between the claim and the record (a kill, an OOM)."""


class DyingBackend(LocmemBackend):
    def send_messages(self, messages: Any) -> int:
        raise SenderDied


def test_a_notice_whose_sender_died_is_sent_once_its_lease_runs_out(
    clock: Any, settings: Any
) -> None:
    settings.EMAIL_BACKEND = f"{__name__}.DyingBackend"
    with pytest.raises(SenderDied):
        send()
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    claimed = Notification.objects.get()
    assert claimed.status == Notification.Status.PENDING
    assert claimed.claimed_until is not None
    assert claimed.claimed_until > timezone.now()

    # Still leased to the sender: another run leaves it alone (it may be mid-send).
    assert notifications_send_due() == {"sent": 0, "retrying": 0, "failed": 0}
    assert send() is None
    assert mail.outbox == []

    Notification.objects.filter(pk=claimed.pk).update(
        claimed_until=timezone.now() - timedelta(seconds=1)
    )
    assert notifications_send_due() == {"sent": 1, "retrying": 0, "failed": 0}

    claimed.refresh_from_db()
    assert claimed.status == Notification.Status.SENT
    assert claimed.attempts == 2
    assert len(mail.outbox) == 1
    assert mail.outbox[0].subject == claimed.subject


def test_the_test_clock_retries_refused_emails_as_days_pass(
    clock: Any, smtp: SmtpServer, api: Any
) -> None:
    smtp.refuse_data("451 4.3.0 Try again later")
    send()

    response = api.post("/api/v1/test_clock/advance", {"to": "2026-01-16T00:00:00Z"}, format="json")

    assert response.status_code == 200, response.json()
    assert response.json()["days"] == [
        {"date": "2026-01-16", "work": {"notifications": {"sent": 1}}}
    ]
    assert Notification.objects.get().status == Notification.Status.SENT
    assert len(smtp.messages) == 1


@pytest.mark.django_db(transaction=True)
def test_two_senders_racing_for_one_key_send_one_email(clock: Any) -> None:
    barrier = threading.Barrier(2)
    results: list[Notification | None] = []
    errors: list[BaseException] = []

    def race() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(send())
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=race) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert sorted(result is None for result in results) == [False, True]
    assert len(mail.outbox) == 1
    assert Notification.objects.count() == 1


def test_what_was_sent_cannot_be_edited(clock: Any) -> None:
    notification = send()
    assert notification is not None

    with pytest.raises(IntegrityError, match="never edited"), transaction.atomic():
        Notification.objects.filter(pk=notification.pk).update(subject="Something else")
    with pytest.raises(IntegrityError, match="never edited"), transaction.atomic():
        Notification.objects.filter(pk=notification.pk).update(recipient="x@example.com")

    # The delivery columns move; deleting (pruning the log) stays possible.
    Notification.objects.filter(pk=notification.pk).update(attempts=2)
    Notification.objects.filter(pk=notification.pk).delete()
    assert Notification.objects.count() == 0


@pytest.mark.parametrize(
    "fields",
    [
        {"status": "sent", "sent_at": None, "next_attempt_at": None},
        {"status": "pending", "sent_at": None, "next_attempt_at": None},
        {"status": "failed", "sent_at": None, "error": ""},
        {"claimed_until": FIXED_NOW},
        {"status": "pending", "sent_at": None},
        {"related_type": "subscriptions.subscription", "related_id": ""},
    ],
)
def test_the_database_refuses_inconsistent_rows(fields: dict[str, Any]) -> None:
    row: dict[str, Any] = {
        "kind": "k",
        "dedupe_key": "k:1",
        "recipient": "a@example.com",
        "subject": "s",
        "body_text": "t",
        "body_html": "h",
        "template": "t",
        "status": "sent",
        "sent_at": datetime(2026, 1, 1, tzinfo=UTC),
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
        "updated_at": datetime(2026, 1, 1, tzinfo=UTC),
    }
    with pytest.raises(IntegrityError), transaction.atomic():
        Notification.objects.create(**{**row, **fields})
