"""The notification log in the Django admin: read-only (the services write it)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString

from core.notifications.models import Notification


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "kind",
        "recipient",
        "subject",
        "status",
        "attempts",
        "sent_at",
        "customer_id",
    )
    list_filter = ("status", "kind")
    search_fields = ("recipient", "dedupe_key", "subject", "related_id", "=customer_id")
    date_hierarchy = "created_at"
    ordering = ("-id",)
    fields = (
        "kind",
        "dedupe_key",
        "recipient",
        "subject",
        "status",
        "attempts",
        "error",
        "next_attempt_at",
        "created_at",
        "sent_at",
        "customer_id",
        "related_type",
        "related_id",
        "template",
        "body_text",
        "html_preview",
    )
    readonly_fields = fields

    @admin.display(description="HTML body")
    def html_preview(self, obj: Notification) -> SafeString:
        # Shown sandboxed: the body is our own rendering, but it stays out of the admin's DOM.
        return format_html(
            '<iframe sandbox srcdoc="{}" style="width: 100%; height: 420px; border: 1px solid '
            '#ccc;"></iframe>',
            obj.body_html,
        )

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
