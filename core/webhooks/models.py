"""Outbound webhooks: endpoints, the outbox of events, deliveries and their attempt log.

An `OutboxEvent` is written in the same transaction as the change it reports; one
`WebhookDelivery` per subscribed endpoint is written with it and sent after commit. Every HTTP
attempt leaves a `WebhookDeliveryAttempt`.

Timestamps read the platform clock (`core.clock.now()`), so deliveries follow a test clock in
TEST_MODE; `dispatched_at` and `claimed_until` are the only wall-clock fields: they guard
against lost tasks and dead workers, which live in real time whatever the platform clock says.
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import F, Func, Q, Value
from django.db.models.lookups import Exact

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
EVENT_ID_PREFIX = "evt_"


class WebhookEndpoint(models.Model):
    """A URL that receives signed events.

    The secret is a shared signing key, not a password: the platform needs it in clear to sign
    every request, so it is stored as is (and kept out of the audit log and of API reads). A
    partner's endpoint receives only events about that partner's customers.
    """

    class Status(models.TextChoices):
        ENABLED = "enabled", "Enabled"
        DISABLED = "disabled", "Disabled"

    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=500, blank=True)
    secret = models.CharField(max_length=100)
    # After a roll with a grace period the old secret signs too, until it expires.
    previous_secret = models.CharField(max_length=100, blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    enabled_events = ArrayField(models.CharField(max_length=64))
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ENABLED)
    disabled_reason = models.CharField(max_length=500, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_notice_sent_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(
        default=0, help_text="Failed attempts in a row; any success resets it."
    )
    failing_since = models.DateTimeField(
        null=True, blank=True, help_text="When the current run of failures began."
    )
    partner = models.ForeignKey(
        "customers.Partner",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="webhook_endpoints",
        help_text="Receives only events about this partner's customers.",
    )
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=~Q(enabled_events=[]), name="webhook_endpoint_events_not_empty"
            ),
            models.CheckConstraint(
                condition=Q(secret__startswith=SECRET_PREFIX), name="webhook_endpoint_secret_prefix"
            ),
            models.CheckConstraint(
                condition=Q(previous_secret="", previous_secret_expires_at__isnull=True)
                | (
                    Q(previous_secret__startswith=SECRET_PREFIX)
                    & Q(previous_secret_expires_at__isnull=False)
                ),
                name="webhook_endpoint_previous_secret_expires",
            ),
            models.CheckConstraint(
                condition=Q(status="enabled", disabled_at__isnull=True, disabled_reason="")
                | Q(status="disabled", disabled_at__isnull=False),
                name="webhook_endpoint_status_consistent",
            ),
            models.CheckConstraint(
                condition=Q(consecutive_failures=0, failing_since__isnull=True)
                | Q(consecutive_failures__gt=0, failing_since__isnull=False),
                name="webhook_endpoint_failure_streak_consistent",
            ),
        ]
        indexes = [models.Index(fields=["status", "partner"])]

    def __str__(self) -> str:
        return self.url


class OutboxEvent(models.Model):
    """Something that happened, as receivers will see it. Append-only.

    `payload` is a JSON snapshot of the resource at the time of the change; `customer_id` names
    the customer it concerns (it decides which partner endpoints receive it) and is not a
    foreign key: the event outlives whatever it describes.
    """

    public_id = models.CharField(max_length=40, editable=False)
    type = models.CharField(max_length=64)
    payload = models.JSONField()
    customer_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["public_id"], name="outbox_event_public_id_unique"),
            models.CheckConstraint(
                condition=Q(public_id__regex=r"^evt_[0-9a-f]{32}$"), name="outbox_event_public_id"
            ),
            models.CheckConstraint(
                condition=Exact(
                    Func(F("payload"), function="jsonb_typeof", output_field=models.CharField()),
                    Value("object"),
                ),
                name="outbox_event_payload_is_object",
            ),
        ]
        indexes = [
            models.Index(fields=["type", "-id"]),
            models.Index(fields=["customer_id", "-id"]),
            models.Index(fields=["created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.public_id} {self.type}"


class WebhookDelivery(models.Model):
    """One event on its way to one endpoint, across all its attempts.

    pending: waiting for its first attempt (or queued again by a resend); retrying: an attempt
    failed and the next one is due at `next_attempt_at`; succeeded: the endpoint answered 2xx;
    abandoned: every attempt of the retry schedule failed; failed: stopped because the
    endpoint was disabled. Only pending and retrying deliveries are ever sent, and a worker
    claims one (`claimed_until`) before sending so no two workers send it at once.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RETRYING = "retrying", "Retrying"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed (endpoint disabled)"
        ABANDONED = "abandoned", "Abandoned (retries exhausted)"

    event = models.ForeignKey(OutboxEvent, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.PROTECT, related_name="deliveries"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempt_count = models.PositiveIntegerField(default=0)
    round_start_attempt = models.PositiveIntegerField(
        default=0,
        help_text="attempt_count when the retry schedule last (re)started: creation or resend.",
    )
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    dispatched_at = models.DateTimeField(
        null=True, blank=True, help_text="Wall clock: when a task to send it was last queued."
    )
    claimed_until = models.DateTimeField(
        null=True, blank=True, help_text="Wall clock: a worker is sending it until then."
    )
    claim_token = models.UUIDField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_response_excerpt = models.TextField(blank=True)
    last_error = models.CharField(max_length=1000, blank=True)
    succeeded_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["event", "endpoint"], name="webhook_delivery_once_per_endpoint"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["pending", "retrying"], next_attempt_at__isnull=False)
                | (
                    ~Q(status__in=["pending", "retrying"])
                    & Q(next_attempt_at__isnull=True, claimed_until__isnull=True)
                ),
                name="webhook_delivery_scheduled_while_open",
            ),
            models.CheckConstraint(
                condition=Q(round_start_attempt__lte=F("attempt_count")),
                name="webhook_delivery_round_within_attempts",
            ),
            models.CheckConstraint(
                condition=Q(status="succeeded", succeeded_at__isnull=False)
                | (~Q(status="succeeded") & Q(succeeded_at__isnull=True)),
                name="webhook_delivery_succeeded_at",
            ),
        ]
        indexes = [
            # The sweeper's scan: open deliveries by due time.
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status__in=["pending", "retrying"]),
                name="webhook_delivery_due",
            ),
            models.Index(fields=["endpoint", "-id"]),
            models.Index(fields=["status", "-id"]),
        ]

    def __str__(self) -> str:
        return f"delivery {self.pk} of event {self.event_id} to endpoint {self.endpoint_id}"


class WebhookDeliveryAttempt(models.Model):
    """One HTTP request of a delivery and what came back: the delivery log. Append-only."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempts")
    attempt_number = models.PositiveIntegerField()
    url = models.URLField(max_length=2000)
    request_headers = models.JSONField(help_text="As sent; the secret itself never is.")
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_excerpt = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField()
    error = models.CharField(max_length=1000, blank=True)
    succeeded = models.BooleanField()
    attempted_at = models.DateTimeField()

    class Meta:
        ordering = ["attempt_number"]
        constraints = [
            models.UniqueConstraint(
                fields=["delivery", "attempt_number"], name="webhook_attempt_number_unique"
            ),
            models.CheckConstraint(
                condition=Q(attempt_number__gte=1), name="webhook_attempt_number_positive"
            ),
        ]

    def __str__(self) -> str:
        outcome = self.response_status or self.error[:40]
        return f"attempt {self.attempt_number} of delivery {self.delivery_id}: {outcome}"
