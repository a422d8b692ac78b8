"""The ledger in the Django admin: read-only, because it is written only by its services."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from billing.ledger.models import (
    Account,
    JournalEntry,
    JournalLine,
    RecognitionReduction,
    RecognitionSchedule,
)


class ReadOnlyAdminMixin:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Account)
class AccountAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("code", "currency", "party", "type", "debit_total", "credit_total", "balance")
    list_filter = ("currency", "code", "type")
    search_fields = ("party",)
    ordering = ("currency", "code", "party")


class JournalLineInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = JournalLine
    fields = ("account", "side", "amount", "currency")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).select_related("account")


@admin.register(JournalEntry)
class JournalEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "effective_date",
        "source_type",
        "source_id",
        "description",
        "idempotency_key",
        "reverses",
        "created_at",
    )
    list_filter = ("source_type", "effective_date")
    search_fields = ("idempotency_key", "source_id", "description")
    date_hierarchy = "effective_date"
    inlines = [JournalLineInline]
    list_select_related = ("reverses",)
    raw_id_fields = ("reverses",)


class RecognitionReductionInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = RecognitionReduction
    fields = (
        "kind",
        "effective_date",
        "amount",
        "recognized_share",
        "deferred_share",
        "tax",
        "counterparty",
        "entry",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(RecognitionSchedule)
class RecognitionScheduleAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "source_type",
        "source_id",
        "currency",
        "amount",
        "reduced_amount",
        "recognized_amount",
        "service_start",
        "service_end",
        "recognized_through",
    )
    list_filter = ("currency", "revenue_account")
    search_fields = ("source_id",)
    inlines = [RecognitionReductionInline]
