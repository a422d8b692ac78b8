"""The notification log: every email the platform sends to a customer, once.

A row is written (claimed) before the email goes out, and its `dedupe_key` is unique: the
database decides that a notice about one thing is sent at most once, however many runs race
for it. The rendered subject and bodies are kept, so the log shows exactly what was sent and a
retry sends the same message. The related object and the customer are opaque references (a
type label and an id), not foreign keys: core knows nothing of the apps that send through it,
and the log outlives what it mentions.

Clocks: `created_at`, `sent_at` and `next_attempt_at` read the platform clock (retries follow a
test clock); `claimed_until` is a wall-clock lease against a sender that died mid-send.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class Notification(models.Model):
    """One email to one recipient.

    pending: claimed and being sent, or waiting for another attempt after the mail server
    refused it (`next_attempt_at`); sent: the mail server took it; failed: given up (the
    address was refused, or every retry failed) with the reason in `error`.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    kind = models.CharField(max_length=64, help_text='What it tells, e.g. "renewal_notice".')
    dedupe_key = models.CharField(
        max_length=255,
        unique=True,
        help_text="Sent at most once per key, e.g. renewal_notice:<subscription>:<renewal date>.",
    )
    recipient = models.EmailField(max_length=254)
    subject = models.CharField(max_length=300)
    body_text = models.TextField()
    body_html = models.TextField()
    template = models.CharField(max_length=100, help_text="templates/emails/<template>.txt|.html")
    related_type = models.CharField(
        max_length=100, blank=True, help_text='"app.model" of what it is about.'
    )
    related_id = models.CharField(max_length=64, blank=True)
    customer_id = models.BigIntegerField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.CharField(max_length=1000, blank=True, help_text="The last failure.")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_until = models.DateTimeField(
        null=True, blank=True, help_text="Wall clock: a sender is sending it until then."
    )
    claim_token = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(status="pending", next_attempt_at__isnull=False, sent_at__isnull=True)
                | Q(status="sent", sent_at__isnull=False, next_attempt_at__isnull=True)
                | (
                    Q(status="failed", sent_at__isnull=True, next_attempt_at__isnull=True)
                    & ~Q(error="")
                ),
                name="notification_status_consistent",
            ),
            models.CheckConstraint(
                condition=Q(status="pending") | Q(claimed_until__isnull=True),
                name="notification_claimed_only_while_pending",
            ),
            models.CheckConstraint(
                condition=~Q(dedupe_key="") & ~Q(kind="") & ~Q(recipient=""),
                name="notification_identified",
            ),
            models.CheckConstraint(
                condition=Q(related_type="", related_id="")
                | (~Q(related_type="") & ~Q(related_id="")),
                name="notification_related_complete",
            ),
        ]
        indexes = [
            models.Index(fields=["kind", "-id"]),
            models.Index(fields=["customer_id", "-id"]),
            models.Index(fields=["related_type", "related_id"]),
            models.Index(fields=["created_at"]),
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status="pending"),
                name="notification_pending_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} to {self.recipient} ({self.status})"
