"""Who has what, from when to when: subscriptions, their timeline and scheduled changes.

Billing periods are anchored (core.periods). `billed_through` is the high-water mark of
recurring billing: fees for every day before it have been invoiced, none after it. All
lifecycle services move it under a row lock, so billing twice never bills a day twice.
"""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q

from catalog.models import Bundle, Coupon, Meter, Plan, PlanPhase, PriceList, PromotionCode
from customers.models import Customer


class SubscriptionGroup(models.Model):
    """The subscriptions created together from a bundle, billed together on one invoice."""

    customer = models.ForeignKey(
        Customer, on_delete=models.PROTECT, related_name="subscription_groups"
    )
    bundle = models.ForeignKey(Bundle, on_delete=models.PROTECT, related_name="groups")
    created_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.bundle.code} for customer {self.customer_id}"


class Subscription(models.Model):
    class Status(models.TextChoices):
        FUTURE = "future", "Starts later"
        TRIALING = "trialing", "Trialing"
        ACTIVE = "active", "Active"
        PAST_DUE = "past_due", "Past due"
        PAUSED = "paused", "Paused"
        CANCELED = "canceled", "Canceled"

    # Indexed by (customer, -id) below: no index of its own.
    customer = models.ForeignKey(
        Customer, on_delete=models.PROTECT, related_name="subscriptions", db_index=False
    )
    # PROTECT: a plan with subscribers can be archived, never deleted.
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    phase = models.ForeignKey(PlanPhase, on_delete=models.PROTECT, related_name="subscriptions")
    price_list = models.ForeignKey(
        PriceList, on_delete=models.PROTECT, related_name="subscriptions"
    )
    currency = models.CharField(max_length=3)
    pricing_date = models.DateField(
        help_text="Selects the price versions (grandfathering): the signup date unless migrated."
    )
    quantity = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=10, choices=Status.choices)

    start_on = models.DateField()
    phase_started_on = models.DateField()
    phase_ends_on = models.DateField(null=True, blank=True, help_text="Empty: evergreen.")
    billing_anchor = models.DateField(
        null=True, blank=True, help_text="Start of the first paid phase, or the calendar day."
    )
    billing_day = models.PositiveSmallIntegerField(null=True, blank=True)
    current_period_start = models.DateField(null=True, blank=True)
    current_period_end = models.DateField(null=True, blank=True)
    billed_through = models.DateField(
        null=True, blank=True, help_text="Recurring fees are invoiced for every day before this."
    )
    usage_billed_through = models.DateField(null=True, blank=True)
    unit_amount = models.DecimalField(
        max_digits=19,
        decimal_places=4,
        null=True,
        blank=True,
        help_text="Per-unit price replacing the catalog's (a fixed-price bundle's share).",
    )
    setup_fee_billed = models.BooleanField(
        default=False, help_text="The one-time fee went out with the first paid period."
    )
    next_transition_on = models.DateField(
        null=True, blank=True, help_text="The next day work falls due (renewal, phase, change)."
    )

    cancel_at_period_end = models.BooleanField(default=False)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    ended_on = models.DateField(null=True, blank=True)
    canceled_at = models.DateTimeField(null=True, blank=True)
    cancel_reason = models.CharField(max_length=200, blank=True)

    paused_on = models.DateField(null=True, blank=True)
    pause_resumes_on = models.DateField(null=True, blank=True, help_text="Empty: until resumed.")

    parent = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="addons",
        help_text="The base subscription of an add-on.",
    )
    group = models.ForeignKey(
        SubscriptionGroup,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="subscriptions",
    )
    previous = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="reactivations",
        help_text="The ended subscription this one reactivates.",
    )
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["customer", "-id"]),
            models.Index(
                fields=["next_transition_on"], condition=~Q(status="canceled"), name="sub_due_idx"
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(quantity__gte=1), name="subscription_quantity_min_1"
            ),
            models.CheckConstraint(
                condition=Q(currency__regex=r"^[A-Z]{3}$"), name="subscription_currency_iso"
            ),
            models.CheckConstraint(
                condition=~Q(status="canceled") | Q(ended_on__isnull=False),
                name="subscription_canceled_has_end",
            ),
            models.CheckConstraint(
                condition=Q(current_period_start__isnull=True)
                | Q(current_period_start__lt=F("current_period_end")),
                name="subscription_period_ordered",
            ),
            models.CheckConstraint(
                condition=~Q(status="paused") | Q(paused_on__isnull=False),
                name="subscription_paused_has_date",
            ),
            models.CheckConstraint(
                condition=Q(billing_day__isnull=True) | Q(billing_day__gte=1, billing_day__lte=31),
                name="subscription_billing_day_in_month",
            ),
            models.CheckConstraint(
                condition=Q(unit_amount__isnull=True) | Q(unit_amount__gte=0),
                name="subscription_unit_amount_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(billed_through__isnull=True)
                | Q(billing_anchor__isnull=True)
                | Q(billed_through__gte=F("start_on")),
                name="subscription_billed_after_start",
            ),
        ]

    def __str__(self) -> str:
        return f"sub #{self.pk} {self.plan.code} x{self.quantity} ({self.status})"


class SubscriptionDiscount(models.Model):
    """A coupon on a subscription: it discounts periods that start before `ends_on`."""

    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, related_name="discounts"
    )
    coupon = models.ForeignKey(Coupon, on_delete=models.PROTECT, related_name="+")
    promotion_code = models.ForeignKey(
        PromotionCode, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    starts_on = models.DateField()
    ends_on = models.DateField(null=True, blank=True, help_text="Empty: forever.")
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_on__isnull=True) | Q(ends_on__gt=F("starts_on")),
                name="subscription_discount_ordered",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.coupon.code} on sub #{self.subscription_id}"


class ScheduledChange(models.Model):
    """A change that takes effect later (a downgrade at period end, a pause at period end)."""

    class Kind(models.TextChoices):
        CHANGE_PLAN = "change_plan", "Plan change"
        CHANGE_QUANTITY = "change_quantity", "Quantity change"
        PAUSE = "pause", "Pause"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPLIED = "applied", "Applied"
        CANCELED = "canceled", "Undone"

    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, related_name="scheduled_changes"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    effective_on = models.DateField()
    plan = models.ForeignKey(
        Plan, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    quantity = models.PositiveIntegerField(null=True, blank=True)
    pause_resumes_on = models.DateField(null=True, blank=True)
    pause_cycles = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "kind"],
                condition=Q(status="pending"),
                name="scheduled_change_one_pending_per_kind",
            ),
            models.CheckConstraint(
                condition=~Q(kind="change_plan") | Q(plan__isnull=False),
                name="scheduled_change_plan_has_plan",
            ),
            models.CheckConstraint(
                condition=~Q(kind="change_quantity") | Q(quantity__gte=1),
                name="scheduled_change_quantity_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} on {self.effective_on} ({self.status})"


class SubscriptionEvent(models.Model):
    """The append-only timeline: one row per change.

    A database trigger refuses UPDATE and DELETE, so history cannot be rewritten.
    """

    class Kind(models.TextChoices):
        CREATED = "created", "Created"
        STARTED = "started", "Started"
        PHASE_STARTED = "phase_started", "Phase started"
        RENEWED = "renewed", "Renewed"
        PLAN_CHANGED = "plan_changed", "Plan changed"
        QUANTITY_CHANGED = "quantity_changed", "Quantity changed"
        CHANGE_SCHEDULED = "change_scheduled", "Change scheduled"
        CHANGE_UNDONE = "change_undone", "Scheduled change undone"
        PAUSE_SCHEDULED = "pause_scheduled", "Pause scheduled"
        PAUSED = "paused", "Paused"
        RESUMED = "resumed", "Resumed"
        CANCEL_SCHEDULED = "cancel_scheduled", "Cancel scheduled"
        CANCEL_UNDONE = "cancel_undone", "Cancel undone"
        CANCELED = "canceled", "Canceled"
        REACTIVATED = "reactivated", "Reactivated"
        DISCOUNT_APPLIED = "discount_applied", "Discount applied"
        DISCOUNT_ENDED = "discount_ended", "Discount ended"
        PAYMENT_FAILED = "payment_failed", "Payment failed"
        RECOVERED = "recovered", "Recovered"

    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="events")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    occurred_at = models.DateTimeField()
    effective_on = models.DateField()
    actor_type = models.CharField(max_length=16)
    actor_label = models.CharField(max_length=200, blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["subscription", "id"]
        indexes = [models.Index(fields=["kind", "effective_on"])]

    def __str__(self) -> str:
        return f"sub #{self.subscription_id} {self.kind} on {self.effective_on}"


class UsageEvent(models.Model):
    """One usage record from the caller; `event_id` makes recording it idempotent."""

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="usage_events")
    subscription = models.ForeignKey(
        Subscription, on_delete=models.PROTECT, related_name="usage_events"
    )
    meter = models.ForeignKey(Meter, on_delete=models.PROTECT, related_name="usage_events")
    event_id = models.CharField(max_length=200)
    occurred_at = models.DateTimeField()
    properties = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "event_id"], name="usage_event_id_unique_per_customer"
            ),
        ]
        indexes = [models.Index(fields=["subscription", "meter", "occurred_at"])]

    def __str__(self) -> str:
        return f"{self.meter.code} {self.event_id}"


class BillingRun(models.Model):
    """One pass of the billing run over everything due by `as_of`, split into chunks that the
    workers process. Its counters move as chunks finish; it ends when its last chunk does."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        COMPLETED_WITH_FAILURES = "completed_with_failures", "Completed with failures"
        FAILED = "failed", "Failed"

    as_of = models.DateField(help_text="Everything due on or before this day is processed.")
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.RUNNING)
    actor_label = models.CharField(max_length=200, blank=True)
    chunk_size = models.PositiveIntegerField()
    due = models.PositiveIntegerField(default=0, help_text="Families of subscriptions due.")
    processed = models.PositiveIntegerField(default=0)
    invoices = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)
    counts = models.JSONField(default=dict, blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(chunks_done__lte=F("chunks_total")),
                name="billing_run_chunks_done_within_total",
            ),
            models.CheckConstraint(
                condition=Q(status="running") | Q(finished_at__isnull=False),
                name="billing_run_finished_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"billing run #{self.pk} as of {self.as_of} ({self.status})"

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def progress(self) -> float:
        """The share of the due families processed, 0.0 to 1.0."""
        return 1.0 if self.due == 0 else min(self.processed / self.due, 1.0)


class BillingRunChunk(models.Model):
    """A slice of a run's families: done once, however often its task is delivered."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DONE = "done", "Done"

    run = models.ForeignKey(BillingRun, on_delete=models.CASCADE, related_name="chunks")
    number = models.PositiveIntegerField()
    families = models.JSONField(help_text='[["base", id] | ["group", id], ...]')
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    counts = models.JSONField(default=dict, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "number"]
        constraints = [
            models.UniqueConstraint(fields=["run", "number"], name="billing_run_chunk_unique"),
        ]

    def __str__(self) -> str:
        return f"run #{self.run_id} chunk {self.number} ({self.status})"


class BillingRunFailure(models.Model):
    """A family the run could not process. It stays due, so the next run tries it again."""

    run = models.ForeignKey(BillingRun, on_delete=models.CASCADE, related_name="failures")
    family_kind = models.CharField(max_length=8)
    family_key = models.PositiveBigIntegerField(help_text="The base subscription or the group.")
    subscription = models.ForeignKey(
        Subscription, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    error_type = models.CharField(max_length=100)
    error = models.TextField()
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["run", "id"]
        indexes = [models.Index(fields=["family_kind", "family_key"])]

    def __str__(self) -> str:
        return f"run #{self.run_id}: {self.family_kind} {self.family_key} failed"


class DunningCase(models.Model):
    """The collection of one unpaid subscription invoice after its charge failed (dunning).

    Opened by the first declined charge, it retries on a schedule counted from that first
    failure, escalates the subscriptions on the invoice (past due, warning, blocked) and ends
    with the payment (recovered), a void, or the final action (canceled, left unpaid). One case
    per invoice, ever: a closed case is history and is never reopened.
    """

    class Stage(models.TextChoices):
        PAST_DUE = "past_due", "Past due"
        WARNING = "warning", "Warning"
        BLOCKED = "blocked", "Blocked (no access)"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    class Outcome(models.TextChoices):
        RECOVERED = "recovered", "Recovered (paid)"
        CANCELED = "canceled", "Subscription canceled"
        LEFT_UNPAID = "left_unpaid", "Left unpaid (uncollectible)"
        VOIDED = "voided", "Invoice voided"

    invoice = models.OneToOneField(
        "billing.Invoice", on_delete=models.PROTECT, related_name="dunning_case"
    )
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="dunning_cases")
    subscriptions = models.ManyToManyField(Subscription, related_name="dunning_cases")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    stage = models.CharField(max_length=10, choices=Stage.choices, default=Stage.PAST_DUE)
    outcome = models.CharField(max_length=12, choices=Outcome.choices, blank=True)
    first_failed_at = models.DateTimeField()
    first_failed_on = models.DateField(help_text="Every retry and escalation counts from here.")
    next_retry_on = models.DateField(
        null=True, blank=True, help_text="Empty: no retry due (a hard decline waits for a card)."
    )
    retries = models.PositiveSmallIntegerField(default=0, help_text="Scheduled retries made.")
    last_retry_on = models.DateField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Failed charges seen.")
    last_attempt_id = models.BigIntegerField(null=True, blank=True)
    last_decline_code = models.CharField(max_length=64, blank=True)
    last_decline_kind = models.CharField(max_length=4, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["customer", "-id"]),
            models.Index(
                fields=["next_retry_on"], condition=Q(status="open"), name="dunning_open_idx"
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(Q(status="open") & Q(outcome="") & Q(closed_at__isnull=True))
                | (Q(status="closed") & ~Q(outcome="") & Q(closed_at__isnull=False)),
                name="dunning_case_closed_has_outcome",
            ),
            models.CheckConstraint(
                condition=Q(status="open") | Q(next_retry_on__isnull=True),
                name="dunning_case_closed_retries_nothing",
            ),
            models.CheckConstraint(
                condition=Q(last_decline_kind__in=["", "soft", "hard"]),
                name="dunning_case_decline_kind_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"dunning of invoice {self.invoice_id} ({self.status}, {self.stage})"
