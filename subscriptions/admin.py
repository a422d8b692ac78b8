"""Django admin for subscriptions: read what happened, act only through the services.

Subscriptions are never edited field by field here: billing depends on every date of them.
The actions (cancel at period end, undo a cancel) call the lifecycle services, which lock the
row, write the timeline and the audit log.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from core.actors import Actor
from core.errors import ApplicationError
from subscriptions.models import (
    BillingRun,
    BillingRunFailure,
    DunningCase,
    ScheduledChange,
    Subscription,
    SubscriptionEvent,
)
from subscriptions.services import subscription_cancel, subscription_undo_cancel


class _ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class TimelineInline(_ReadOnlyInline):
    model = SubscriptionEvent
    fields = ("occurred_at", "effective_on", "kind", "actor_label", "data")
    readonly_fields = fields
    ordering = ("id",)
    verbose_name_plural = "Timeline"


class ScheduledChangeInline(_ReadOnlyInline):
    model = ScheduledChange
    fields = ("kind", "status", "effective_on", "plan", "quantity", "pause_resumes_on")
    readonly_fields = fields
    ordering = ("effective_on", "id")


def _run(
    request: HttpRequest,
    modeladmin: admin.ModelAdmin,
    queryset: QuerySet[Subscription],
    action: Any,
    done: str,
) -> None:
    actor = Actor.user(request.user)
    succeeded = 0
    for subscription in queryset.order_by("pk"):
        try:
            action(subscription=subscription, actor=actor)
        except ApplicationError as error:
            modeladmin.message_user(
                request, f"Subscription {subscription.pk}: {error.message}", messages.ERROR
            )
        else:
            succeeded += 1
    if succeeded:
        modeladmin.message_user(request, f"{succeeded} subscription(s) {done}.", messages.SUCCESS)


@admin.action(description="Cancel at the end of the current period")
def cancel_at_period_end(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Subscription]
) -> None:
    _run(request, modeladmin, queryset, subscription_cancel, "will cancel at their period end")


@admin.action(description="Undo the scheduled cancellation")
def undo_cancel(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Subscription]
) -> None:
    _run(request, modeladmin, queryset, subscription_undo_cancel, "will go on")


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "customer",
        "plan",
        "quantity",
        "status",
        "cancel_at_period_end",
        "billed_through",
        "next_transition_on",
    )
    list_filter = ("status", "cancel_at_period_end", "currency")
    search_fields = ("id", "customer__email", "customer__external_id", "plan__code")
    list_select_related = ("customer", "plan")
    inlines = (ScheduledChangeInline, TimelineInline)
    actions = (cancel_at_period_end, undo_cancel)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in Subscription._meta.concrete_fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(SubscriptionEvent)
class SubscriptionEventAdmin(admin.ModelAdmin):
    list_display = ("occurred_at", "subscription", "kind", "effective_on", "actor_label")
    list_filter = ("kind",)
    search_fields = ("subscription__id",)
    list_select_related = ("subscription", "subscription__plan")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in SubscriptionEvent._meta.concrete_fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class BillingRunFailureInline(_ReadOnlyInline):
    model = BillingRunFailure
    fields = ("family_kind", "family_key", "subscription", "error_type", "error", "created_at")
    readonly_fields = fields


@admin.register(BillingRun)
class BillingRunAdmin(admin.ModelAdmin):
    """Runs are recorded by the billing run (hourly, or POST /api/v1/billing_runs): read-only."""

    list_display = (
        "id",
        "as_of",
        "status",
        "due",
        "processed",
        "invoices",
        "failed",
        "chunks_done",
        "chunks_total",
        "started_at",
        "finished_at",
    )
    list_filter = ("status",)
    date_hierarchy = "started_at"
    readonly_fields = (
        "as_of",
        "status",
        "actor_label",
        "chunk_size",
        "due",
        "processed",
        "invoices",
        "failed",
        "chunks_total",
        "chunks_done",
        "counts",
        "started_at",
        "finished_at",
    )
    inlines = (BillingRunFailureInline,)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(DunningCase)
class DunningCaseAdmin(admin.ModelAdmin):
    """Read-only: dunning moves by itself (docs/dunning.md); its settings are DUNNING_*."""

    list_display = (
        "id",
        "invoice",
        "customer",
        "status",
        "stage",
        "outcome",
        "first_failed_on",
        "next_retry_on",
        "retries",
        "attempts",
        "last_decline_code",
    )
    list_filter = ("status", "stage", "outcome", "last_decline_kind")
    search_fields = ("id", "invoice__number", "customer__email", "customer__external_id")
    list_select_related = ("invoice", "customer")
    date_hierarchy = "first_failed_at"

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [
            *(field.name for field in DunningCase._meta.concrete_fields),
            "subscriptions",
        ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
