"""Sending notifications: claim the dedupe key, render, send through Django's email backend.

At most once, never lost silently:

1. `notification_send` renders the templates, then claims the notice by inserting its row
   (status pending, leased to this sender) in its own committed transaction. The dedupe key is
   unique, so when two runs race for the same notice the database lets one insert it; the
   other gets None and sends nothing.
2. The email goes out after that commit, outside any transaction (a slow mail server holds no
   database lock), through Django's email backend: the console in development, SMTP via
   EMAIL_URL, the in-memory outbox in tests.
3. The outcome is recorded: sent; or, when the mail server did not take the message, another
   attempt later (NOTIFICATION_RETRY_SCHEDULE) until the attempts run out and the row is marked
   failed with the error; a refused recipient address fails at once (retrying cannot help).
4. A row still pending when its lease has run out belongs to a sender that died between the
   claim and the record: `notifications_send_due` (every few minutes, and each test-clock day)
   sends it again. This is the one place a customer could get a notice twice: if the sender
   died after the mail server accepted the message and before the row said so (a window of
   milliseconds). Not losing the notice wins over that; the retry carries the same Message-ID,
   which lets receiving systems recognise the duplicate.

Every row is kept, with what was rendered, as the notification log. Like the webhook outbox,
the log is its own record: sending writes no audit entries.
"""

from __future__ import annotations

import hashlib
import logging
import re
import smtplib
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.mail import EmailMultiAlternatives
from django.core.validators import validate_email
from django.db import IntegrityError, models, transaction
from django.db.models import Q
from django.template import TemplateDoesNotExist
from django.template.loader import render_to_string
from django.utils import timezone

from core import clock
from core.errors import ValidationError
from core.notifications.models import Notification

logger = logging.getLogger(__name__)

Related = models.Model | tuple[str, str | int] | None

ERROR_MAX_LENGTH = 1000
SUBJECT_MAX_LENGTH = 300
PORTAL_PATH = "/portal/"
_TEMPLATE_NAME = re.compile(r"[a-z0-9_]+")
_PENDING = Notification.Status.PENDING


@dataclass(frozen=True, slots=True)
class _Claim:
    notification_id: int
    token: uuid.UUID


def portal_url() -> str:
    """The customer portal's address, which every notice links to."""
    return f"{settings.PORTAL_BASE_URL}{PORTAL_PATH}"


def notification_send(
    *,
    kind: str,
    dedupe_key: str,
    to: str,
    subject: str,
    template: str,
    context: dict[str, Any],
    customer_id: int | None = None,
    related: Related = None,
) -> Notification | None:
    """Send `templates/emails/<template>.txt|.html` to `to`, at most once per `dedupe_key`.

    Returns the logged notification as the attempt left it (sent, or pending another attempt,
    or failed), or None when a notification with this key exists already: then nothing is
    sent. The templates see `context` and `portal_url`. Never call it inside a transaction:
    the claim must be committed before the email goes out.
    """
    kind = _clean_text(kind, param="kind", max_length=64)
    dedupe_key = _clean_text(dedupe_key, param="dedupe_key", max_length=255)
    recipient = _clean_recipient(to)
    # One line: a header never carries a line break.
    subject = " ".join(_clean_text(subject, param="subject", max_length=SUBJECT_MAX_LENGTH).split())
    related_type, related_id = _clean_related(related)
    body_text, body_html = _render(template, {"portal_url": portal_url(), **context})
    now = clock.now()
    token = uuid.uuid4()
    try:
        with transaction.atomic(durable=True):
            notification = Notification.objects.create(
                kind=kind,
                dedupe_key=dedupe_key,
                recipient=recipient,
                subject=subject,
                body_text=body_text,
                body_html=body_html,
                template=template,
                related_type=related_type,
                related_id=related_id,
                customer_id=_clean_customer_id(customer_id),
                status=_PENDING,
                attempts=1,
                next_attempt_at=now,
                claimed_until=_lease_end(),
                claim_token=token,
                created_at=now,
                updated_at=now,
            )
    except IntegrityError:
        # The unique key decides: another run claimed this notice first (it may still be
        # sending it). Any other integrity error is a bug and propagates.
        if Notification.objects.filter(dedupe_key=dedupe_key).exists():
            return None
        raise
    return _deliver(_Claim(notification.pk, token))


def notifications_send_due(*, limit: int = 500) -> dict[str, int]:
    """Send the pending notifications whose attempt has come: retries after a refusal, and
    those whose sender died mid-send (lease run out). Safe to run concurrently: each one is
    claimed before it is sent. Returns how many were sent, retried later and failed."""
    counts = {"sent": 0, "retrying": 0, "failed": 0}
    for _ in range(limit):
        claim = _claim_next_due()
        if claim is None:
            break
        notification = _deliver(claim)
        key = {"sent": "sent", "failed": "failed"}.get(notification.status, "retrying")
        counts[key] += 1
    return counts


def notifications_send_due_daily(day: date) -> dict[str, int]:
    """The daily-work form of `notifications_send_due` (for the test clock's advance)."""
    return {name: count for name, count in notifications_send_due().items() if count}


# --- internals --------------------------------------------------------------------------------


def _lease_end() -> datetime:
    # Leases measure real elapsed time (a dead sender), which a frozen test clock would not.
    return timezone.now() + timedelta(seconds=settings.NOTIFICATION_SEND_LEASE_SECONDS)


def _claim_next_due() -> _Claim | None:
    now = clock.now()
    wall = timezone.now()
    with transaction.atomic(durable=True):
        # Skip, never wait: a row locked by another sender is that sender's to send.
        notification = (
            Notification.objects.select_for_update(skip_locked=True)
            .filter(status=_PENDING, next_attempt_at__lte=now)
            .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lte=wall))
            .order_by("next_attempt_at", "id")
            .first()
        )
        if notification is None:
            return None
        token = uuid.uuid4()
        notification.claim_token = token
        notification.claimed_until = _lease_end()
        notification.attempts += 1
        notification.updated_at = now
        notification.save(update_fields=["claim_token", "claimed_until", "attempts", "updated_at"])
    return _Claim(notification.pk, token)


def _deliver(claim: _Claim) -> Notification:
    notification = Notification.objects.get(pk=claim.notification_id)
    message = EmailMultiAlternatives(
        subject=notification.subject,
        body=notification.body_text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[notification.recipient],
        headers={
            "Message-ID": _message_id(notification),
            "X-Notification-Kind": notification.kind,
        },
    )
    message.attach_alternative(notification.body_html, "text/html")
    error, permanent = "", False
    try:
        if message.send() != 1:
            error = "The email backend did not send the message."
    except smtplib.SMTPRecipientsRefused as exc:
        error, permanent = f"The mail server refused the recipient: {exc}", True
    except (smtplib.SMTPException, OSError) as exc:
        error = f"Sending failed: {type(exc).__name__}: {exc}"
    return _record(claim, error=error[:ERROR_MAX_LENGTH], permanent=permanent)


def _record(claim: _Claim, *, error: str, permanent: bool) -> Notification:
    now = clock.now()
    with transaction.atomic(durable=True):
        notification = Notification.objects.select_for_update().get(pk=claim.notification_id)
        if not error:
            # Sent is a fact, whoever holds the claim now.
            if notification.status != Notification.Status.SENT:
                notification.sent_at = now
            notification.status = Notification.Status.SENT
            notification.error = ""
            notification.next_attempt_at = None
            notification.claimed_until = None
            notification.claim_token = None
        elif notification.claim_token == claim.token and notification.status == _PENDING:
            notification.error = error
            notification.claimed_until = None
            notification.claim_token = None
            schedule = settings.NOTIFICATION_RETRY_SCHEDULE
            if permanent or notification.attempts > len(schedule):
                notification.status = Notification.Status.FAILED
                notification.next_attempt_at = None
                logger.error(
                    "Notification %s (%s) to %s failed for good: %s",
                    notification.pk,
                    notification.dedupe_key,
                    notification.recipient,
                    error,
                )
            else:
                delay = schedule[notification.attempts - 1]
                notification.next_attempt_at = now + timedelta(seconds=delay)
                logger.warning(
                    "Notification %s (%s) not sent, attempt %s; next at %s: %s",
                    notification.pk,
                    notification.dedupe_key,
                    notification.attempts,
                    notification.next_attempt_at.isoformat(),
                    error,
                )
        else:
            # Our lease ran out and another sender owns the next step; leave it to them.
            return notification
        notification.updated_at = now
        notification.save()
    return notification


def _message_id(notification: Notification) -> str:
    # The same on every attempt, so a receiving system can recognise a resent duplicate.
    domain = settings.DEFAULT_FROM_EMAIL.rpartition("@")[2].strip(" >") or "localhost"
    digest = hashlib.sha256(notification.dedupe_key.encode()).hexdigest()[:16]
    return f"<notification.{notification.pk}.{digest}@{domain}>"


def _render(template: str, context: dict[str, Any]) -> tuple[str, str]:
    if not isinstance(template, str) or not _TEMPLATE_NAME.fullmatch(template):
        raise ValidationError(
            "A template is a name like renewal_notice (templates/emails/<name>.txt and .html).",
            code="invalid_template",
            param="template",
        )
    try:
        text = render_to_string(f"emails/{template}.txt", context)
        html = render_to_string(f"emails/{template}.html", context)
    except TemplateDoesNotExist as exc:
        raise ValidationError(
            f"No email template {exc}.", code="unknown_template", param="template"
        ) from None
    return text, html


def _clean_text(value: object, *, param: str, max_length: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{param} is a non-empty text.", code="invalid", param=param)
    text = value.strip()
    if len(text) > max_length:
        raise ValidationError(
            f"{param} has at most {max_length} characters.", code="too_long", param=param
        )
    return text


def _clean_recipient(value: object) -> str:
    address = value.strip() if isinstance(value, str) else ""
    try:
        validate_email(address)
    except DjangoValidationError:
        raise ValidationError(
            f"{value!r} is not an email address.", code="invalid_recipient", param="to"
        ) from None
    return address


def _clean_related(related: Related) -> tuple[str, str]:
    if related is None:
        return "", ""
    if isinstance(related, models.Model):
        if related.pk is None:
            raise ValidationError("The related object is not saved.", param="related")
        return related._meta.label_lower, str(related.pk)
    if (
        isinstance(related, tuple)
        and len(related) == 2
        and isinstance(related[0], str)
        and related[0]
        and isinstance(related[1], str | int)
        and not isinstance(related[1], bool)
        and str(related[1])
    ):
        return related[0][:100], str(related[1])[:64]
    raise ValidationError(
        'related is a saved model instance or ("app.model", id).', param="related"
    )


def _clean_customer_id(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(
            "customer_id is a customer's id (an integer).",
            code="invalid_customer_id",
            param="customer_id",
        )
    return value
