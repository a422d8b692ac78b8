from __future__ import annotations

from django.db import models
from django.db.models import Q


class TestClock(models.Model):
    """The platform's "now" in TEST_MODE: one stored row, shared by the web and the workers.

    It does not tick: time moves only when it is advanced, so tests and demos are repeatable.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    frozen_time = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(id=1), name="test_clock_singleton")
        ]

    def __str__(self) -> str:
        return f"test clock at {self.frozen_time.isoformat()}"


class AuditLog(models.Model):
    """Who changed what, from which request, with the state before and after. Append-only."""

    class ActorType(models.TextChoices):
        USER = "user", "Staff user"
        API_KEY = "api_key", "API key"
        CUSTOMER = "customer", "Customer"
        SYSTEM = "system", "System"

    occurred_at = models.DateTimeField(db_index=True)
    actor_type = models.CharField(max_length=16, choices=ActorType.choices)
    actor_id = models.CharField(max_length=64, blank=True)
    actor_label = models.CharField(max_length=200, blank=True)
    action = models.CharField(max_length=100)
    object_type = models.CharField(max_length=100)
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=200, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["object_type", "object_id", "-occurred_at"]),
            # Only requests are looked up by id; the workers' entries (none) stay out of it.
            models.Index(
                fields=["request_id"], condition=~Q(request_id=""), name="audit_request_idx"
            ),
        ]
        ordering = ["-occurred_at", "-id"]

    def __str__(self) -> str:
        return f"{self.actor_label} {self.action} {self.object_type}:{self.object_id}"
