"""Django admin of the webhooks: endpoints (managed through the services), and the read-only
outbox and delivery log with a resend action."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from core.actors import Actor
from core.errors import ApplicationError
from core.webhooks.events import SUBSCRIBABLE
from core.webhooks.models import (
    OutboxEvent,
    WebhookDelivery,
    WebhookDeliveryAttempt,
    WebhookEndpoint,
)
from core.webhooks.services import (
    webhook_endpoint_clean_input,
    webhook_endpoint_create,
    webhook_endpoint_disable,
    webhook_endpoint_enable,
    webhook_endpoint_ping,
    webhook_endpoint_roll_secret,
    webhook_endpoint_update,
    webhook_resend,
)

ENDPOINT_FIELDS = ("url", "description", "enabled_events", "partner")


class ReadOnlyAdminMixin:
    """A log: shown, never added, changed or deleted by hand."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class WebhookEndpointForm(forms.ModelForm):
    # Checked by the service (https outside development, no credentials in it).
    url = forms.CharField(max_length=2000, label="URL")

    class Meta:
        model = WebhookEndpoint
        fields = list(ENDPOINT_FIELDS)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["enabled_events"].help_text = (
            "Comma-separated: event types, a group such as invoice.*, or * for everything. "
            f"Known: {', '.join(sorted(SUBSCRIBABLE))}."
        )
        if self.instance.pk:
            self.fields["partner"].disabled = True

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        current = self.instance if self.instance.pk else None
        values = {field: cleaned[field] for field in ENDPOINT_FIELDS if field in cleaned}
        if current is not None:
            values.pop("partner", None)
        try:
            cleaned.update(webhook_endpoint_clean_input(values, current=current))
        except ApplicationError as exc:
            field = (exc.param or "").split("[")[0]
            self.add_error(field if field in self.fields else None, exc.message)
        return cleaned


def _reload(obj: Any, saved: Any) -> None:
    """Make the admin's form instance the saved row (the admin redirects and logs with it)."""
    obj.pk = saved.pk
    obj.refresh_from_db()
    obj._state.adding = False


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = (
        "url",
        "partner",
        "status",
        "events_summary",
        "consecutive_failures",
        "created_at",
    )
    list_filter = ("status", "partner")
    search_fields = ("url", "description")
    list_select_related = ("partner",)
    readonly_fields = (
        "secret",
        "previous_secret_expires_at",
        "status",
        "disabled_reason",
        "disabled_at",
        "consecutive_failures",
        "failing_since",
        "created_at",
        "updated_at",
    )
    actions = ("disable", "enable", "roll_secret", "send_ping")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # disable instead: the delivery log refers to it

    @admin.display(description="events")
    def events_summary(self, obj: WebhookEndpoint) -> str:
        return ", ".join(obj.enabled_events)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        actor = Actor.user(request.user)
        values = {f: form.cleaned_data[f] for f in ENDPOINT_FIELDS if f in form.cleaned_data}
        if change:
            values.pop("partner", None)
            _reload(obj, webhook_endpoint_update(endpoint=obj, actor=actor, **values))
        else:
            _reload(obj, webhook_endpoint_create(actor=actor, **values))

    @admin.action(description="Disable selected endpoints")
    def disable(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        self._each(request, queryset, webhook_endpoint_disable, "disabled")

    @admin.action(description="Enable selected endpoints")
    def enable(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        self._each(request, queryset, webhook_endpoint_enable, "enabled")

    @admin.action(description="Roll the signing secret (the old one stops at once)")
    def roll_secret(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        self._each(request, queryset, webhook_endpoint_roll_secret, "given a new secret")

    @admin.action(description="Send a test ping")
    def send_ping(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        self._each(request, queryset, webhook_endpoint_ping, "pinged")

    def _each(
        self,
        request: HttpRequest,
        queryset: QuerySet[WebhookEndpoint],
        service: Callable[..., Any],
        verb: str,
    ) -> None:
        actor = Actor.user(request.user)
        done = 0
        for endpoint in queryset.order_by("pk"):
            try:
                service(endpoint=endpoint, actor=actor)
                done += 1
            except ApplicationError as exc:
                self.message_user(request, f"{endpoint}: {exc.message}", messages.ERROR)
        self.message_user(request, f"{done} endpoint(s) {verb}.", messages.SUCCESS)


class DeliveryInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = WebhookDelivery
    fields = ("endpoint", "status", "attempt_count", "next_attempt_at", "last_response_status")
    readonly_fields = fields
    show_change_link = True
    extra = 0


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("public_id", "type", "customer_id", "created_at")
    list_filter = ("type",)
    search_fields = ("=public_id", "=customer_id")
    date_hierarchy = "created_at"
    fields = ("public_id", "type", "customer_id", "payload", "created_at")
    readonly_fields = fields
    inlines = (DeliveryInline,)


class AttemptInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = WebhookDeliveryAttempt
    fields = (
        "attempt_number",
        "attempted_at",
        "response_status",
        "duration_ms",
        "error",
        "response_excerpt",
        "request_headers",
    )
    readonly_fields = fields
    extra = 0


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "event",
        "endpoint",
        "status",
        "attempt_count",
        "next_attempt_at",
        "last_response_status",
    )
    list_filter = ("status", "endpoint")
    search_fields = ("=event__public_id",)
    list_select_related = ("event", "endpoint")
    date_hierarchy = "created_at"
    readonly_fields = (
        "event",
        "endpoint",
        "status",
        "attempt_count",
        "next_attempt_at",
        "last_attempt_at",
        "last_response_status",
        "last_response_excerpt",
        "last_error",
        "succeeded_at",
        "created_at",
        "updated_at",
    )
    fields = readonly_fields
    inlines = (AttemptInline,)
    actions = ("resend",)

    @admin.action(description="Resend selected deliveries now")
    def resend(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        actor = Actor.user(request.user)
        done = 0
        for delivery in queryset.order_by("pk"):
            try:
                webhook_resend(delivery=delivery, actor=actor)
                done += 1
            except ApplicationError as exc:
                self.message_user(request, f"Delivery {delivery.pk}: {exc.message}", messages.ERROR)
        self.message_user(request, f"{done} delivery(ies) queued again.", messages.SUCCESS)
