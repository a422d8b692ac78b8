"""Django admin for the catalog: raw configuration for staff.

Saves go through `AuditedModelAdmin` (and, for inline rows, `save_formset` here), so every
change lands in the audit log; timestamps come from the platform clock. The forms check with
the services' own rules (currency decimals, phase order, tiers, places), so a mistake shows on
the form instead of failing in the database.

What may already be sold is never edited or deleted: a plan's phases, a coupon's terms and a
tax rate's percentage are read-only once saved, price versions are added, never changed, and
deleting something in use is refused with the admin's "protected objects" page. Archiving
(an action on every list) is how things are retired.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import Model, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from catalog import places, services
from catalog.models import (
    Bundle,
    BundleComponent,
    BundlePrice,
    Coupon,
    CouponAmount,
    Feature,
    Meter,
    MeterPrice,
    MeterPriceTier,
    Plan,
    PlanMeter,
    PlanPhase,
    Price,
    PriceList,
    Product,
    PromotionCode,
    TaxRate,
)
from catalog.services import PhaseSpec, TierSpec
from core import clock
from core.actors import Actor
from core.admin import AuditedModelAdmin
from core.errors import ApplicationError
from core.services import audit_record, audit_snapshot

# --- shared machinery ---------------------------------------------------------------------------


def _form_error(error: ApplicationError, fields: Iterable[str]) -> forms.ValidationError:
    """A service error on the form field it names (`phases[0].amount` -> `amount`)."""
    field = (error.param or "").rsplit(".", 1)[-1]
    if field in set(fields):
        return forms.ValidationError({field: error.message})
    return forms.ValidationError(error.message)


def _is_new(obj: Model) -> bool:
    return obj._state.adding or obj.pk is None


def _stamp(obj: Model) -> None:
    if _is_new(obj) and hasattr(obj, "created_at") and obj.created_at is None:
        obj.created_at = clock.now()


class ParentAwareFormSet(BaseInlineFormSet):
    """Inline forms that see their parent while it is still being created (for validation)."""

    def _construct_form(self, i: int, **kwargs: Any) -> Any:
        form = super()._construct_form(i, **kwargs)  # type: ignore[misc]
        setattr(form.instance, self.fk.name, self.instance)
        return form

    @property
    def parent_is_new(self) -> bool:
        return self.instance is None or self.instance.pk is None


class ArchivedFilter(admin.SimpleListFilter):
    title = "archived"
    parameter_name = "archived"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("no", "Active"), ("yes", "Archived")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "no":
            return queryset.filter(archived_at__isnull=True)
        if self.value() == "yes":
            return queryset.filter(archived_at__isnull=False)
        return queryset


class CatalogModelAdmin(AuditedModelAdmin):
    """Clock timestamps, audited inline rows, archive actions and in-use protection."""

    # The service that archives one object, e.g. `services.plan_archive`, and its keyword.
    archive_service: Callable[..., Any] | None = None
    unarchive_service: Callable[..., Any] | None = None
    archive_keyword = ""
    # Fields that can be set when the object is created and never after.
    create_only_fields: tuple[str, ...] = ()

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        if self.archive_service is None:
            actions.pop("archive_selected", None)
            actions.pop("unarchive_selected", None)
        return actions

    actions = ["archive_selected", "unarchive_selected"]

    @admin.action(description="Archive the selected %(verbose_name_plural)s")
    def archive_selected(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._run_archive(request, queryset, self.archive_service, "archived")

    @admin.action(description="Unarchive the selected %(verbose_name_plural)s")
    def unarchive_selected(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._run_archive(request, queryset, self.unarchive_service, "unarchived")

    def _run_archive(
        self,
        request: HttpRequest,
        queryset: QuerySet[Any],
        service: Callable[..., Any] | None,
        done: str,
    ) -> None:
        if service is None:
            return
        actor = Actor.user(request.user)
        count = 0
        for obj in queryset.order_by("pk"):
            try:
                service(**{self.archive_keyword: obj, "actor": actor})
            except ApplicationError as error:
                self.message_user(request, f"{obj}: {error.message}", messages.ERROR)
            else:
                count += 1
        if count:
            self.message_user(request, f"{count} {done}.", messages.SUCCESS)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        fixed = tuple(self.readonly_fields)
        return fixed + self.create_only_fields if obj is not None else fixed

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        _stamp(obj)
        super().save_model(request, obj, form, change)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        """Save inline rows one by one, each with its audit entry, in one transaction."""
        with transaction.atomic():
            self._save_formset_audited(request, formset)

    def _save_formset_audited(self, request: HttpRequest, formset: Any) -> None:
        actor = Actor.user(request.user)
        instances = formset.save(commit=False)
        for obj in formset.deleted_objects:
            audit_record(
                actor=actor,
                action=f"{obj._meta.model_name}.delete",
                instance=obj,
                before=audit_snapshot(obj),
            )
            obj.delete()
        for obj in instances:
            new = _is_new(obj)
            before = None
            if not new:
                previous = type(obj)._default_manager.filter(pk=obj.pk).first()
                before = audit_snapshot(previous) if previous is not None else None
            _stamp(obj)
            obj.save()
            audit_record(
                actor=actor,
                action=f"{obj._meta.model_name}.{'create' if new else 'update'}",
                instance=obj,
                before=before,
                after=audit_snapshot(obj),
            )
        formset.save_m2m()

    def in_use(self, obj: Any) -> list[str]:
        """Why `obj` must not be deleted (beyond PROTECT foreign keys): archive it instead."""
        return []

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        for obj in objs:
            protected = [*protected, *self.in_use(obj)]
        return deleted, model_count, perms_needed, protected


def _in_effect(versions: QuerySet[Any], label: str) -> list[str]:
    today = clock.today()
    return [
        f"{label} in effect since {version.effective_from}: {version}"
        for version in versions.filter(effective_from__lte=today)
    ]


class CreateOnlyInline(admin.TabularInline):
    """Rows given when the parent is created (a plan's phases, a coupon's amounts), read-only
    afterwards."""

    extra = 1

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if obj is None:
            return tuple(self.readonly_fields)
        return tuple(str(field) for field in self.get_fields(request, obj))

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and super().has_add_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class VersionHistoryInline(admin.TabularInline):
    """Price versions already written: shown, never edited."""

    extra = 0
    can_delete = False
    ordering = ("currency", "-effective_from")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return tuple(str(field) for field in self.get_fields(request, obj))

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class NewVersionInline(admin.TabularInline):
    """Blank rows for new price versions (the history is a separate, read-only inline)."""

    extra = 1
    can_delete = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).none()


# --- features and products ----------------------------------------------------------------------


@admin.register(Feature)
class FeatureAdmin(CatalogModelAdmin):
    list_display = ("code", "name", "created_at", "archived_at")
    list_filter = (ArchivedFilter,)
    search_fields = ("code", "name")
    fields = ("code", "name", "description", "created_at", "archived_at")
    readonly_fields = ("created_at", "archived_at")
    create_only_fields = ("code",)
    archive_service = staticmethod(services.feature_archive)
    unarchive_service = staticmethod(services.feature_unarchive)
    archive_keyword = "feature"

    def in_use(self, obj: Feature) -> list[str]:
        return [f"Entitlement of plan {plan.code}" for plan in obj.plans.all()]


@admin.register(Product)
class ProductAdmin(CatalogModelAdmin):
    list_display = ("code", "name", "kind", "delivery", "created_at", "archived_at")
    list_filter = ("kind", "delivery", ArchivedFilter)
    search_fields = ("code", "name")
    fields = ("code", "name", "description", "kind", "delivery", "metadata")
    readonly_fields = ("created_at", "archived_at")
    create_only_fields = ("code", "kind")
    archive_service = staticmethod(services.product_archive)
    unarchive_service = staticmethod(services.product_unarchive)
    archive_keyword = "product"


# --- plans, phases and prices -------------------------------------------------------------------


class PhaseFormSet(ParentAwareFormSet):
    """The phases of a new plan, checked as a whole: [trial] -> [discount...] -> final."""

    def clean(self) -> None:
        super().clean()
        if not self.parent_is_new:
            return  # phases are fixed once the plan exists
        rows = [
            form.cleaned_data
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]
        rows.sort(key=lambda row: row.get("sequence") or 0)
        if [row.get("sequence") for row in rows] != list(range(1, len(rows) + 1)):
            raise forms.ValidationError("Number the phases 1, 2, 3... in the order they run.")
        specs = [
            PhaseSpec(
                kind=row.get("kind") or "",
                duration_unit=row.get("duration_unit") or "",
                duration_count=row.get("duration_count"),
                renews=bool(row.get("renews")),
            )
            for row in rows
        ]
        try:
            services.plan_phases_validate(specs)
        except ApplicationError as error:
            raise forms.ValidationError(error.message) from None


class PlanPhaseInline(CreateOnlyInline):
    model = PlanPhase
    formset = PhaseFormSet
    fields = ("sequence", "kind", "duration_unit", "duration_count", "renews")
    min_num = 1
    ordering = ("sequence",)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        fields = tuple(str(field) for field in self.fields or ())
        return fields if obj is None else (*fields, "prices_in_effect")

    @admin.display(description="prices in effect today")
    def prices_in_effect(self, phase: PlanPhase) -> SafeString:
        today = clock.today()
        latest: dict[tuple[int, str], Price] = {}
        for price in phase.prices.filter(effective_from__lte=today).select_related("price_list"):
            key = (price.price_list_id, price.currency)
            if key not in latest or latest[key].effective_from < price.effective_from:
                latest[key] = price
        rows = format_html_join(
            "",
            "<li>{} {} ({}, from {})</li>",
            (
                (p.amount, p.currency, p.price_list.code, p.effective_from)
                for p in sorted(latest.values(), key=lambda p: (p.price_list.code, p.currency))
            ),
        )
        add = reverse("admin:catalog_price_add") + f"?phase={phase.pk}"
        return format_html('<ul>{}</ul><a href="{}">Add a price version</a>', rows, add)


class PlanMeterInline(admin.TabularInline):
    model = PlanMeter
    fields = ("meter", "pricing")
    extra = 0
    can_delete = False
    show_change_link = True

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return ()

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Existing metered charges are changed on their own page (their prices are versions).
        return obj is None


@admin.register(Plan)
class PlanAdmin(CatalogModelAdmin):
    list_display = (
        "code",
        "name",
        "product",
        "billing_interval",
        "interval_count",
        "tier_rank",
        "archived_at",
    )
    list_filter = ("product", "billing_interval", ArchivedFilter)
    search_fields = ("code", "name", "product__code")
    list_select_related = ("product",)
    fields = (
        "product",
        "code",
        "name",
        "description",
        "tier_rank",
        "billing_interval",
        "interval_count",
        "billing_day",
        "min_quantity",
        "max_quantity",
        "features",
        "addons",
        "metadata",
        "created_at",
        "archived_at",
    )
    readonly_fields = ("created_at", "archived_at")
    create_only_fields = ("product", "code", "billing_interval", "interval_count", "billing_day")
    filter_horizontal = ("features", "addons")
    inlines = (PlanPhaseInline, PlanMeterInline)
    archive_service = staticmethod(services.plan_archive)
    unarchive_service = staticmethod(services.plan_unarchive)
    archive_keyword = "plan"

    def in_use(self, obj: Plan) -> list[str]:
        return [
            *_in_effect(Price.objects.filter(phase__plan=obj), "Price"),
            *_in_effect(MeterPrice.objects.filter(plan_meter__plan=obj), "Metered price"),
            *(f"Restriction of coupon {coupon.code}" for coupon in obj.coupons.all()),
            *(f"Add-on of plan {plan.code}" for plan in obj.available_on.all()),
        ]


class PriceForm(forms.ModelForm):
    class Meta:
        model = Price
        fields = ("phase", "price_list", "currency", "amount", "setup_fee", "effective_from")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "effective_from" in self.fields:
            self.fields["effective_from"].initial = clock.today()
            self.fields["price_list"].required = False
            self.fields["price_list"].help_text = "Empty: the default price list."

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        try:
            price = services.price_clean_input(
                phase=cleaned["phase"],
                currency=cleaned["currency"],
                amount=cleaned["amount"],
                setup_fee=cleaned.get("setup_fee") or Decimal("0"),
                price_list=cleaned.get("price_list"),
                effective_from=cleaned.get("effective_from"),
            )
        except ApplicationError as error:
            raise _form_error(error, self.fields) from None
        for field in ("price_list", "currency", "amount", "setup_fee", "effective_from"):
            cleaned[field] = getattr(price, field)
            setattr(self.instance, field, cleaned[field])
        return cleaned


@admin.register(Price)
class PriceAdmin(CatalogModelAdmin):
    """Price versions: added, shown, never changed (the database refuses updates)."""

    form = PriceForm
    list_display = (
        "phase",
        "price_list",
        "currency",
        "amount",
        "setup_fee",
        "effective_from",
        "created_at",
    )
    list_filter = ("currency", "price_list", "phase__plan")
    search_fields = ("phase__plan__code", "phase__plan__name")
    list_select_related = ("phase__plan", "price_list")
    readonly_fields = ("created_at",)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def in_use(self, obj: Price) -> list[str]:
        return _in_effect(Price.objects.filter(pk=obj.pk), "Price")


class PriceListForm(forms.ModelForm):
    class Meta:
        model = PriceList
        fields = ("code", "name", "kind", "countries", "segment")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        try:
            countries, segment = services.price_list_clean_input(
                kind=cleaned.get("kind") or self.instance.kind,
                countries=cleaned.get("countries") or [],
                segment=cleaned.get("segment") or "",
                exclude=self.instance if self.instance.pk else None,
            )
        except ApplicationError as error:
            raise _form_error(error, self.fields) from None
        cleaned["countries"], cleaned["segment"] = countries, segment
        self.instance.countries, self.instance.segment = countries, segment
        return cleaned


@admin.register(PriceList)
class PriceListAdmin(CatalogModelAdmin):
    form = PriceListForm
    list_display = ("code", "name", "kind", "countries", "segment", "archived_at")
    list_filter = ("kind", ArchivedFilter)
    search_fields = ("code", "name", "segment")
    fields = ("code", "name", "kind", "countries", "segment", "created_at", "archived_at")
    readonly_fields = ("created_at", "archived_at")
    create_only_fields = ("code", "kind")
    archive_service = staticmethod(services.price_list_archive)
    unarchive_service = staticmethod(services.price_list_unarchive)
    archive_keyword = "price_list"

    def in_use(self, obj: PriceList) -> list[str]:
        if obj.kind == PriceList.Kind.DEFAULT:
            return ["The default price list: every price falls back to it"]
        return []


# --- bundles ------------------------------------------------------------------------------------


class BundleComponentFormSet(ParentAwareFormSet):
    def clean(self) -> None:
        super().clean()
        if not self.parent_is_new:
            return  # components are fixed once the bundle exists
        plans = [
            form.cleaned_data["plan"]
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]
        if len(plans) < 2:
            raise forms.ValidationError("A bundle sells at least two plans together.")
        if len({plan.pk for plan in plans}) != len(plans):
            raise forms.ValidationError("A plan appears twice; use its quantity instead.")
        if len({(plan.billing_interval, plan.interval_count) for plan in plans}) > 1:
            raise forms.ValidationError("All plans of a bundle bill on the same interval.")
        archived = [plan.code for plan in plans if plan.archived_at is not None]
        if archived:
            raise forms.ValidationError(f"Archived plans cannot be bundled: {', '.join(archived)}.")


class BundleComponentInline(CreateOnlyInline):
    model = BundleComponent
    formset = BundleComponentFormSet
    fields = ("plan", "quantity")
    extra = 2


class BundlePriceForm(forms.ModelForm):
    class Meta:
        model = BundlePrice
        fields = ("price_list", "currency", "amount", "effective_from")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors or not cleaned.get("currency"):
            return cleaned
        try:
            price = services.bundle_price_clean_input(
                bundle=self.instance.bundle,
                currency=cleaned["currency"],
                amount=cleaned["amount"],
                price_list=cleaned.get("price_list"),
                effective_from=cleaned.get("effective_from"),
            )
        except ApplicationError as error:
            raise _form_error(error, self.fields) from None
        for field in ("price_list", "currency", "amount", "effective_from"):
            cleaned[field] = getattr(price, field)
            setattr(self.instance, field, cleaned[field])
        return cleaned


class BundlePriceHistoryInline(VersionHistoryInline):
    model = BundlePrice
    fields = ("price_list", "currency", "amount", "effective_from", "created_at")
    verbose_name_plural = "price versions"


class NewBundlePriceInline(NewVersionInline):
    model = BundlePrice
    form = BundlePriceForm
    formset = ParentAwareFormSet
    verbose_name_plural = "new price versions"

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        formset = super().get_formset(request, obj, **kwargs)
        formset.form.base_fields["price_list"].required = False
        formset.form.base_fields["effective_from"].required = False
        return formset


@admin.register(Bundle)
class BundleAdmin(CatalogModelAdmin):
    list_display = ("code", "name", "pricing", "discount_percent", "archived_at")
    list_filter = ("pricing", ArchivedFilter)
    search_fields = ("code", "name")
    fields = (
        "code",
        "name",
        "description",
        "pricing",
        "discount_percent",
        "created_at",
        "archived_at",
    )
    readonly_fields = ("created_at", "archived_at")
    create_only_fields = ("code", "pricing", "discount_percent")
    inlines = (BundleComponentInline, BundlePriceHistoryInline, NewBundlePriceInline)
    archive_service = staticmethod(services.bundle_archive)
    unarchive_service = staticmethod(services.bundle_unarchive)
    archive_keyword = "bundle"

    def in_use(self, obj: Bundle) -> list[str]:
        return _in_effect(obj.prices.all(), "Bundle price")


# --- coupons and promotion codes ----------------------------------------------------------------


class CouponAmountForm(forms.ModelForm):
    class Meta:
        model = CouponAmount
        fields = ("currency", "amount_off")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors or not cleaned.get("currency"):
            return cleaned
        try:
            currency, amount = services.coupon_amount_clean_input(
                currency=cleaned["currency"], amount_off=cleaned["amount_off"]
            )
        except ApplicationError as error:
            raise _form_error(error, self.fields) from None
        cleaned["currency"], cleaned["amount_off"] = currency, amount
        self.instance.currency, self.instance.amount_off = currency, amount
        return cleaned


class CouponAmountInline(CreateOnlyInline):
    model = CouponAmount
    form = CouponAmountForm
    fields = ("currency", "amount_off")


class PromotionCodeForm(forms.ModelForm):
    class Meta:
        model = PromotionCode
        fields = ("coupon", "code", "active", "max_redemptions", "expires_at", "first_time_only")

    def clean_code(self) -> str:
        return str(self.cleaned_data.get("code") or "").strip().upper()


class PromotionCodeInline(admin.TabularInline):
    model = PromotionCode
    form = PromotionCodeForm
    fields = (
        "code",
        "active",
        "max_redemptions",
        "times_redeemed",
        "expires_at",
        "first_time_only",
    )
    readonly_fields = ("times_redeemed",)
    extra = 0
    can_delete = False


@admin.register(Coupon)
class CouponAdmin(CatalogModelAdmin):
    list_display = (
        "code",
        "name",
        "discount_type",
        "percent_off",
        "duration",
        "duration_cycles",
        "times_redeemed",
        "max_redemptions",
        "redeem_by",
        "archived_at",
    )
    list_filter = ("discount_type", "duration", ArchivedFilter)
    search_fields = ("code", "name", "promotion_codes__code")
    fields = (
        "code",
        "name",
        "discount_type",
        "percent_off",
        "duration",
        "duration_cycles",
        "max_redemptions",
        "times_redeemed",
        "redeem_by",
        "plans",
        "metadata",
        "created_at",
        "archived_at",
    )
    readonly_fields = ("times_redeemed", "created_at", "archived_at")
    create_only_fields = ("code", "discount_type", "percent_off", "duration", "duration_cycles")
    filter_horizontal = ("plans",)
    inlines = (CouponAmountInline, PromotionCodeInline)
    archive_service = staticmethod(services.coupon_archive)
    unarchive_service = staticmethod(services.coupon_unarchive)
    archive_keyword = "coupon"

    def in_use(self, obj: Coupon) -> list[str]:
        return [f"Redeemed {obj.times_redeemed} times"] if obj.times_redeemed else []


@admin.register(PromotionCode)
class PromotionCodeAdmin(CatalogModelAdmin):
    form = PromotionCodeForm
    list_display = (
        "code",
        "coupon",
        "active",
        "times_redeemed",
        "max_redemptions",
        "expires_at",
        "first_time_only",
    )
    list_filter = ("active", "first_time_only")
    search_fields = ("code", "coupon__code")
    list_select_related = ("coupon",)
    readonly_fields = ("times_redeemed", "created_at")
    create_only_fields = ("coupon", "code")
    archive_service = staticmethod(services.promotion_code_archive)
    unarchive_service = staticmethod(services.promotion_code_unarchive)
    archive_keyword = "promotion_code"

    def in_use(self, obj: PromotionCode) -> list[str]:
        return [f"Redeemed {obj.times_redeemed} times"] if obj.times_redeemed else []


# --- tax rates ----------------------------------------------------------------------------------


class TaxRateForm(forms.ModelForm):
    class Meta:
        model = TaxRate
        fields = ("name", "country", "region", "percentage", "inclusive", "active")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if "country" not in self.fields or self.errors:
            return cleaned
        try:
            country = places.normalize_country(cleaned.get("country") or "")
            region = places.normalize_region(cleaned.get("region") or "", country=country)
        except ApplicationError as error:
            raise _form_error(error, self.fields) from None
        cleaned["country"], cleaned["region"] = country, region
        self.instance.country, self.instance.region = country, region
        return cleaned


@admin.register(TaxRate)
class TaxRateAdmin(CatalogModelAdmin):
    form = TaxRateForm
    list_display = ("name", "country", "region", "percentage", "inclusive", "active")
    list_filter = ("active", "inclusive", "country")
    search_fields = ("name", "country", "region")
    readonly_fields = ("created_at",)
    # Invoices keep the rate they were taxed at: a new rate replaces an old one.
    create_only_fields = ("country", "region", "percentage", "inclusive", "active")
    archive_service = staticmethod(services.tax_rate_archive)
    unarchive_service = staticmethod(services.tax_rate_unarchive)
    archive_keyword = "tax_rate"


# --- meters and metered prices ------------------------------------------------------------------


@admin.register(Meter)
class MeterAdmin(CatalogModelAdmin):
    list_display = ("code", "name", "aggregation", "field_name", "unit_label", "archived_at")
    list_filter = ("aggregation", ArchivedFilter)
    search_fields = ("code", "name")
    fields = (
        "code",
        "name",
        "aggregation",
        "field_name",
        "unit_label",
        "created_at",
        "archived_at",
    )
    readonly_fields = ("created_at", "archived_at")
    create_only_fields = ("code", "aggregation", "field_name")
    archive_service = staticmethod(services.meter_archive)
    unarchive_service = staticmethod(services.meter_unarchive)
    archive_keyword = "meter"


class MeterPriceHistoryInline(VersionHistoryInline):
    model = MeterPrice
    fields = ("price_list", "currency", "effective_from", "tier_summary")
    show_change_link = True
    verbose_name_plural = "price versions"

    @admin.display(description="tiers")
    def tier_summary(self, price: MeterPrice) -> str:
        return "; ".join(str(tier) for tier in price.tiers.all())


@admin.register(PlanMeter)
class PlanMeterAdmin(CatalogModelAdmin):
    list_display = ("plan", "meter", "pricing")
    list_filter = ("pricing", "meter")
    search_fields = ("plan__code", "meter__code")
    list_select_related = ("plan", "meter")
    create_only_fields = ("plan", "meter", "pricing")
    inlines = (MeterPriceHistoryInline,)

    def in_use(self, obj: PlanMeter) -> list[str]:
        return _in_effect(obj.prices.all(), "Metered price")


class TierFormSet(ParentAwareFormSet):
    """A metered price's tiers, checked as a whole against the charge's pricing model."""

    def clean(self) -> None:
        super().clean()
        price: MeterPrice = self.instance
        if not price.currency or price.plan_meter_id is None:
            return  # the price form itself has errors
        rows = [
            form.cleaned_data
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]
        rows.sort(key=lambda row: (row.get("up_to") is None, row.get("up_to") or 0))
        try:
            services.meter_tiers_validate(
                [
                    TierSpec(
                        up_to=row.get("up_to"),
                        unit_amount=row.get("unit_amount") or Decimal("0"),
                        flat_amount=row.get("flat_amount") or Decimal("0"),
                    )
                    for row in rows
                ],
                pricing=price.plan_meter.pricing,
                currency=price.currency,
            )
        except ApplicationError as error:
            raise forms.ValidationError(error.message) from None


class MeterPriceTierInline(admin.TabularInline):
    model = MeterPriceTier
    formset = TierFormSet
    fields = ("up_to", "unit_amount", "flat_amount")
    extra = 3
    min_num = 1
    can_delete = False


class MeterPriceForm(forms.ModelForm):
    class Meta:
        model = MeterPrice
        fields = ("plan_meter", "price_list", "currency", "effective_from")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "effective_from" in self.fields:
            self.fields["effective_from"].initial = clock.today()
            self.fields["price_list"].required = False
            self.fields["price_list"].help_text = "Empty: the default price list."

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        try:
            price = services.meter_price_clean_input(
                plan_meter=cleaned["plan_meter"],
                currency=cleaned["currency"],
                price_list=cleaned.get("price_list"),
                effective_from=cleaned.get("effective_from"),
            )
        except ApplicationError as error:
            raise _form_error(error, self.fields) from None
        for field in ("price_list", "currency", "effective_from"):
            cleaned[field] = getattr(price, field)
            setattr(self.instance, field, cleaned[field])
        return cleaned


@admin.register(MeterPrice)
class MeterPriceAdmin(CatalogModelAdmin):
    """Metered price versions with their tiers: added, shown, never changed."""

    form = MeterPriceForm
    list_display = ("plan_meter", "price_list", "currency", "effective_from", "created_at")
    list_filter = ("currency", "price_list")
    search_fields = ("plan_meter__plan__code", "plan_meter__meter__code")
    list_select_related = ("plan_meter__plan", "plan_meter__meter", "price_list")
    readonly_fields = ("created_at",)
    inlines = (MeterPriceTierInline,)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def in_use(self, obj: MeterPrice) -> list[str]:
        return _in_effect(MeterPrice.objects.filter(pk=obj.pk), "Metered price")
