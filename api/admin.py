"""Django admin for API keys: create (the key is shown once), inspect, revoke.

The key itself is never stored, and its hash is never displayed. Scopes and partner are fixed
at creation: to change what a key may do, create a new one and revoke the old.
"""

from __future__ import annotations

from typing import Any
from weakref import WeakKeyDictionary

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from api.models import ApiKey
from api.services import api_key_create, api_key_revoke
from core.actors import Actor
from core.admin import AuditedModelAdmin
from customers.models import Partner


class ApiKeyCreateForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=ApiKey.Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text="Admin includes write, which includes read.",
    )
    partner = forms.ModelChoiceField(
        queryset=Partner.objects.filter(active=True).order_by("code"),
        required=False,
        help_text="A partner key sees and creates only that partner's customers.",
    )
    rate_limit_per_minute = forms.IntegerField(
        min_value=1, required=False, help_text="Requests per minute; empty for the default."
    )

    class Meta:
        model = ApiKey
        fields = ("name", "scopes", "partner", "rate_limit_per_minute")


class ApiKeyChangeForm(forms.ModelForm):
    rate_limit_per_minute = forms.IntegerField(
        min_value=1, required=False, help_text="Requests per minute; empty for the default."
    )

    class Meta:
        model = ApiKey
        fields = ("name", "rate_limit_per_minute")


class RevokedFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("active", "Active"), ("revoked", "Revoked")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> QuerySet[ApiKey]:
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(AuditedModelAdmin):
    list_display = (
        "prefix",
        "name",
        "scope_list",
        "partner",
        "rate_limit_per_minute",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    list_filter = (RevokedFilter, "partner")
    search_fields = ("prefix", "name", "partner__code")
    list_select_related = ("partner",)
    exclude = ("key_hash",)
    actions = ("revoke",)
    _ADD_FIELDS = ("name", "scopes", "partner", "rate_limit_per_minute")
    _READONLY = (
        "prefix",
        "scopes",
        "partner",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The plaintext of a key created in this request, until the response shows it.
        self._created: WeakKeyDictionary[HttpRequest, str] = WeakKeyDictionary()

    @admin.display(description="scopes")
    def scope_list(self, obj: ApiKey) -> str:
        return ", ".join(obj.scopes)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return self._ADD_FIELDS
        return ("name", "rate_limit_per_minute", *self._READONLY)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return self._READONLY if obj is not None else ()

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        kwargs["form"] = ApiKeyChangeForm if obj is not None else ApiKeyCreateForm
        return super().get_form(request, obj, change, **kwargs)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Revoke instead: the row stays as the record of who could call the API.
        return False

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        data = form.cleaned_data
        user = request.user
        key, plaintext = api_key_create(
            name=data["name"],
            scopes=list(data["scopes"]),
            partner=data.get("partner"),
            rate_limit_per_minute=data.get("rate_limit_per_minute"),
            created_by=user if isinstance(user, User) else None,
            actor=Actor.user(user),
        )
        obj.pk = key.pk
        obj.refresh_from_db()
        obj._state.adding = False
        self._created[request] = plaintext

    def response_add(self, request: HttpRequest, obj: Any, post_url_continue: Any = None) -> Any:
        plaintext = self._created.pop(request, None)
        if plaintext is not None:
            messages.success(
                request,
                f"API key created: {plaintext} — copy it now. It is shown only this once "
                "and cannot be recovered; only its hash is stored.",
            )
        return super().response_add(request, obj, post_url_continue)

    @admin.action(description="Revoke selected API keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> HttpResponse | None:
        actor = Actor.user(request.user)
        keys = list(queryset.filter(revoked_at__isnull=True).order_by("pk"))
        for key in keys:
            api_key_revoke(key=key, actor=actor)
        self.message_user(request, f"{len(keys)} API key(s) revoked.", messages.SUCCESS)
        return None
