"""Django admin for partners, customers and the interactions log.

The admin is a door like the others: its forms validate with the services' own rules (so an
error shows on the field instead of failing the save) and its saves call the services, which
set the timestamps from the platform clock and write the audit entries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import HttpRequest

from core.actors import Actor
from core.admin import AuditedModelAdmin
from core.errors import ApplicationError
from customers.models import Customer, Interaction, Partner
from customers.services import (
    customer_clean_input,
    customer_create,
    customer_update,
    interaction_clean_input,
    interaction_record,
    partner_clean_input,
    partner_create,
    partner_deactivate,
    partner_reactivate,
    partner_update,
)

CUSTOMER_FIELDS = (
    "external_id",
    "email",
    "name",
    "currency",
    "country",
    "region",
    "postal_code",
    "tax_id",
    "segments",
    "acquisition_channel",
    "partner",
    "price_list",
    "billing_day",
    "autocharge",
    "metadata",
)
PARTNER_FIELDS = ("code", "name", "contact_email", "price_list")


def _staff(request: HttpRequest) -> tuple[Actor, User | None]:
    user = request.user
    return Actor.user(user), user if isinstance(user, User) else None


def _reload(obj: Any, saved: Any) -> None:
    """Make the admin's form instance the saved row (the admin redirects and logs with it)."""
    obj.pk = saved.pk
    obj.refresh_from_db()
    obj._state.adding = False


class ServiceValidatedForm(forms.ModelForm):
    """Runs a service's `<noun>_clean_input` in `clean()`: its normalized values are what the
    model validation and the save then see, and its errors land on the offending field."""

    def service_clean(self, values: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        try:
            cleaned.update(self.service_clean(dict(cleaned)))
        except ApplicationError as exc:
            self.add_error(exc.param if exc.param in self.fields else None, exc.message)
        return cleaned


# --- partners ---------------------------------------------------------------------------------


class PartnerForm(ServiceValidatedForm):
    class Meta:
        model = Partner
        fields = list(PARTNER_FIELDS)

    def service_clean(self, values: dict[str, Any]) -> dict[str, Any]:
        current = self.instance if self.instance.pk else None
        if current is not None:
            values.pop("code", None)
        return partner_clean_input(values, current=current)


@admin.register(Partner)
class PartnerAdmin(AuditedModelAdmin):
    form = PartnerForm
    list_display = ("code", "name", "contact_email", "price_list", "active", "created_at")
    list_filter = ("active",)
    search_fields = ("code", "name", "contact_email")
    list_select_related = ("price_list",)
    actions = ("deactivate", "reactivate")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        # The code is the partner's identity in the API: set once.
        return ("code", "active", "created_at") if obj else ("active", "created_at")

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        actor, _ = _staff(request)
        values = {f: form.cleaned_data[f] for f in PARTNER_FIELDS if f in form.cleaned_data}
        if change:
            values.pop("code", None)
            _reload(obj, partner_update(partner=obj, actor=actor, **values))
        else:
            _reload(obj, partner_create(actor=actor, **values))

    @admin.action(description="Deactivate selected partners (their API keys stop working)")
    def deactivate(self, request: HttpRequest, queryset: QuerySet[Partner]) -> None:
        self._each(request, queryset, partner_deactivate, "deactivated")

    @admin.action(description="Reactivate selected partners")
    def reactivate(self, request: HttpRequest, queryset: QuerySet[Partner]) -> None:
        self._each(request, queryset, partner_reactivate, "reactivated")

    def _each(
        self,
        request: HttpRequest,
        queryset: QuerySet[Partner],
        service: Callable[..., Partner],
        verb: str,
    ) -> None:
        actor, _ = _staff(request)
        partners = list(queryset.order_by("pk"))
        for partner in partners:
            service(partner=partner, actor=actor)
        self.message_user(request, f"{len(partners)} partner(s) {verb}.", messages.SUCCESS)


# --- customers --------------------------------------------------------------------------------


class CustomerForm(ServiceValidatedForm):
    class Meta:
        model = Customer
        fields = list(CUSTOMER_FIELDS)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["external_id"].required = False
        self.fields["external_id"].help_text = "Your own id; generated (cus_…) if left empty."

    def service_clean(self, values: dict[str, Any]) -> dict[str, Any]:
        current = self.instance if self.instance.pk else None
        if current is None and not values.get("external_id"):
            values.pop("external_id", None)
        return customer_clean_input(values, current=current)


class InteractionInlineForm(ServiceValidatedForm):
    class Meta:
        model = Interaction
        fields = ("channel", "note")

    def service_clean(self, values: dict[str, Any]) -> dict[str, Any]:
        return interaction_clean_input(values)


class InteractionInline(admin.TabularInline):
    """The contact history on the customer's page. Past entries are read-only: it is a log."""

    model = Interaction
    form = InteractionInlineForm
    fields = ("occurred_at", "channel", "note", "author_label")
    readonly_fields = ("occurred_at", "author_label")
    extra = 1
    can_delete = False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Customer)
class CustomerAdmin(AuditedModelAdmin):
    form = CustomerForm
    inlines = (InteractionInline,)
    list_display = (
        "external_id",
        "name",
        "email",
        "partner",
        "currency",
        "country",
        "acquisition_channel",
        "autocharge",
        "created_at",
    )
    list_filter = ("partner", "acquisition_channel", "country", "currency", "autocharge")
    search_fields = ("email", "name", "external_id")
    list_select_related = ("partner",)
    readonly_fields = ("user", "created_at", "updated_at")
    date_hierarchy = "created_at"

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        actor, _ = _staff(request)
        values = {f: form.cleaned_data[f] for f in CUSTOMER_FIELDS if f in form.cleaned_data}
        if change:
            _reload(obj, customer_update(customer=obj, actor=actor, **values))
        else:
            if not values.get("external_id"):
                values.pop("external_id", None)
            _reload(obj, customer_create(actor=actor, **values))

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if formset.model is not Interaction:
            super().save_formset(request, form, formset, change)
            return
        actor, user = _staff(request)
        # What the admin's change message (its own history) reads back from the formset.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for interaction_form in formset.extra_forms:
            if not interaction_form.has_changed():
                continue
            data = interaction_form.cleaned_data
            formset.new_objects.append(
                interaction_record(
                    customer=form.instance,
                    channel=data["channel"],
                    note=data["note"],
                    actor=actor,
                    author=user,
                )
            )


# --- interactions -----------------------------------------------------------------------------


class InteractionForm(ServiceValidatedForm):
    occurred_at = forms.DateTimeField(
        required=False, help_text="When it happened (UTC); now if left empty."
    )

    class Meta:
        model = Interaction
        fields = ("customer", "channel", "note", "occurred_at")

    def service_clean(self, values: dict[str, Any]) -> dict[str, Any]:
        return interaction_clean_input(values)


@admin.register(Interaction)
class InteractionAdmin(AuditedModelAdmin):
    """Log a contact; the author is the signed-in staff member. Entries are not edited."""

    form = InteractionForm
    list_display = ("occurred_at", "customer", "channel", "author_label", "short_note")
    list_filter = ("channel",)
    search_fields = ("customer__email", "customer__name", "customer__external_id", "note")
    list_select_related = ("customer",)
    autocomplete_fields = ("customer",)
    readonly_fields = ("author", "author_label")
    date_hierarchy = "occurred_at"

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="note")
    def short_note(self, obj: Interaction) -> str:
        return obj.note if len(obj.note) <= 80 else f"{obj.note[:79]}…"

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        actor, user = _staff(request)
        data = form.cleaned_data
        interaction = interaction_record(
            customer=data["customer"],
            channel=data["channel"],
            note=data["note"],
            occurred_at=data.get("occurred_at"),
            actor=actor,
            author=user,
        )
        _reload(obj, interaction)
