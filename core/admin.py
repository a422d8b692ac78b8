from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import models, transaction
from django.http import HttpRequest

from core.actors import Actor
from core.models import AuditLog, TestClock
from core.services import audit_record, audit_snapshot


class AuditedModelAdmin(admin.ModelAdmin):
    """A ModelAdmin whose every save and delete lands in the audit log with before/after.

    The change and its audit entry commit together: the admin's bulk delete action runs
    outside any transaction, and a delete refused by a PROTECT foreign key must not leave an
    entry saying it happened.
    """

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        with transaction.atomic():
            before = None
            if change and obj.pk is not None:
                previous = type(obj).objects.filter(pk=obj.pk).first()
                before = audit_snapshot(previous) if previous is not None else None
            super().save_model(request, obj, form, change)
            audit_record(
                actor=Actor.user(request.user),
                action=f"{obj._meta.model_name}.{'update' if change else 'create'}",
                instance=obj,
                before=before,
                after=audit_snapshot(obj),
            )

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        with transaction.atomic():
            audit_record(
                actor=Actor.user(request.user),
                action=f"{obj._meta.model_name}.delete",
                instance=obj,
                before=audit_snapshot(obj),
            )
            super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: models.QuerySet[Any]) -> None:
        with transaction.atomic():
            for obj in queryset:
                self.delete_model(request, obj)


@admin.register(AuditLog)
class AuditLogAdmin(admin.ModelAdmin):
    list_display = (
        "occurred_at",
        "actor_label",
        "action",
        "object_type",
        "object_id",
        "request_id",
    )
    list_filter = ("actor_type", "object_type")
    search_fields = ("object_id", "actor_label", "action", "request_id")
    date_hierarchy = "occurred_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(TestClock)
class TestClockAdmin(admin.ModelAdmin):
    list_display = ("frozen_time", "updated_at")
