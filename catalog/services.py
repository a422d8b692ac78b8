"""Every write to the catalog: validated at the door, one audit entry per change.

Rules the database cannot state are checked here, before anything is written; the rules it can
state (uniqueness, ranges, one default price list, one active tax rate per place) are decided
by its constraints, and a clash is turned into a ConflictError. Codes and discount terms of
things that may already be sold are immutable: a change is a new version (prices) or a new
object (plans, coupons, tax rates), and the old one is archived, never deleted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar

from django.db import IntegrityError, connection, transaction
from django.db.models import Model

from catalog import places
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
from catalog.selectors import coupon_redeemable, price_list_default
from core import clock
from core.actors import Actor
from core.errors import ConflictError, ValidationError
from core.money import DECIMAL_PLACES, MAX_DIGITS, minor_units, normalize_currency, parse_decimal
from core.periods import IntervalUnit
from core.sentinels import UNSET, Unset
from core.services import audit_record, audit_snapshot

M = TypeVar("M", bound=Model)


_CODE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_PROMOTION_CODE = re.compile(r"^[A-Z0-9][A-Z0-9_-]*$")
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_KEY_COLUMNS = re.compile(r"^Key \((?P<columns>[^)]*)\)=")
_UNIQUE_VIOLATION = "23505"
_MAX_WHOLE_DIGITS = MAX_DIGITS - DECIMAL_PLACES
_UNIT_PRICE_PLACES = DECIMAL_PLACES  # usage prices may be fractions of a cent (0.0025 USD)
_PERCENT_PLACES = 3
_TAX_PERCENT_PLACES = 4
_FINAL_PHASES = {PlanPhase.Kind.EVERGREEN, PlanPhase.Kind.FIXED_TERM}
_INTERVALS = {unit.value for unit in IntervalUnit}


# --- input shapes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PriceSpec:
    """A plan phase's price in one currency; `price_list` None means the default list."""

    currency: str
    amount: Decimal
    setup_fee: Decimal = Decimal("0")
    price_list: PriceList | None = None


@dataclass(frozen=True)
class PhaseSpec:
    kind: str
    duration_unit: str = ""
    duration_count: int | None = None
    renews: bool = False
    prices: Sequence[PriceSpec] = ()


@dataclass(frozen=True)
class BundleComponentSpec:
    plan: Plan
    quantity: int = 1


@dataclass(frozen=True)
class BundlePriceSpec:
    currency: str
    amount: Decimal
    price_list: PriceList | None = None


@dataclass(frozen=True)
class CouponAmountSpec:
    currency: str
    amount_off: Decimal


@dataclass(frozen=True)
class TierSpec:
    """Units up to `up_to` (None: no limit) at `unit_amount` each, plus `flat_amount` once."""

    up_to: Decimal | None
    unit_amount: Decimal = Decimal("0")
    flat_amount: Decimal = Decimal("0")


# --- shared helpers -----------------------------------------------------------------------------


def _clean_code(code: str, *, param: str = "code") -> str:
    value = (code or "").strip().lower()
    if not _CODE.match(value) or len(value) > 64:
        raise ValidationError(
            "A code is 1 to 64 lowercase letters, digits, dashes or underscores.",
            code="invalid_code",
            param=param,
        )
    return value


def _clean_text(value: str, *, param: str, max_length: int = 200, required: bool = True) -> str:
    text = (value or "").strip()
    if required and not text:
        raise ValidationError(f"`{param}` cannot be empty.", code="required", param=param)
    if len(text) > max_length:
        raise ValidationError(
            f"`{param}` is {max_length} characters at most.", code="too_long", param=param
        )
    return text


def _clean_choice(value: str, choices: Iterable[str], *, param: str) -> str:
    allowed = list(choices)
    if value not in allowed:
        raise ValidationError(
            f"`{param}` must be one of {', '.join(allowed)}.", code="invalid_choice", param=param
        )
    return value


def _clean_metadata(metadata: Mapping[str, Any] | None, *, param: str = "metadata") -> dict:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise ValidationError("Metadata is a JSON object.", code="invalid_metadata", param=param)
    return dict(metadata)


def _decimal(value: Decimal | int | str, *, param: str, code: str = "invalid_amount") -> Decimal:
    try:
        return parse_decimal(value, param=param)
    except ValidationError as error:
        raise ValidationError(error.message, code=code, param=param) from None


def _places(number: Decimal) -> int:
    exponent = number.normalize().as_tuple().exponent
    return max(0, -int(exponent))


def _clean_money(
    value: Decimal | int | str,
    currency: str,
    *,
    param: str,
    places: int | None = None,
    positive: bool = False,
) -> Decimal:
    """A non-negative amount with at most the currency's decimals (or `places` decimals)."""
    amount = _decimal(value, param=param)
    limit = minor_units(currency) if places is None else places
    if _places(amount) > limit:
        raise ValidationError(
            f"{currency} amounts here have {limit} decimals at most (got {value}).",
            code="invalid_amount",
            param=param,
        )
    if amount < 0 or (positive and amount == 0):
        raise ValidationError(
            f"`{param}` must be {'greater than zero' if positive else 'zero or more'}.",
            code="invalid_amount",
            param=param,
        )
    if amount.adjusted() >= _MAX_WHOLE_DIGITS:
        raise ValidationError(f"`{param}` is too large.", code="invalid_amount", param=param)
    return amount


def _clean_percent(
    value: Decimal | int | str, *, param: str, places: int, allow_zero: bool
) -> Decimal:
    percent = _decimal(value, param=param, code="invalid_percent")
    low_ok = percent >= 0 if allow_zero else percent > 0
    if not low_ok or percent > 100 or _places(percent) > places:
        low = "0" if allow_zero else "more than 0"
        raise ValidationError(
            f"`{param}` is a percentage from {low} to 100 with {places} decimals at most.",
            code="invalid_percent",
            param=param,
        )
    return percent


def _clean_currency(currency: str, *, param: str = "currency") -> str:
    try:
        return normalize_currency(currency)
    except ValidationError as error:
        raise ValidationError(error.message, code=error.code, param=param) from None


def _clean_positive_int(value: int | None, *, param: str, allow_none: bool = True) -> int | None:
    if value is None:
        if allow_none:
            return None
        raise ValidationError(f"`{param}` is required.", code="required", param=param)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(f"`{param}` must be 1 or more.", code="invalid", param=param)
    if value > 32767:
        raise ValidationError(f"`{param}` is too large.", code="invalid", param=param)
    return value


def _clean_future(moment: datetime | None, *, param: str) -> datetime | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise ValidationError(
            f"`{param}` must carry a timezone.", code="invalid_datetime", param=param
        )
    if moment <= clock.now():
        raise ValidationError(f"`{param}` must be in the future.", code="in_the_past", param=param)
    return moment


def _require_active(instance: Any, *, param: str, code: str) -> None:
    if getattr(instance, "archived_at", None) is not None:
        raise ValidationError(
            f"{instance._meta.verbose_name.capitalize()} {instance} is archived.",
            code=code,
            param=param,
        )


def _lock(name: str) -> None:
    """Serialize check-then-insert writes on one part of the catalog until the commit."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"catalog.{name}"])


def _locked(instance: M) -> M:
    return type(instance)._default_manager.select_for_update().get(pk=instance.pk)


def _insert(instance: M, *, conflicts: Mapping[str, ConflictError] | None = None) -> M:
    """INSERT `instance`; a unique constraint that says no becomes the matching ConflictError.

    The constraint decides (not a read before the write), so two concurrent requests cannot
    both pass; the savepoint keeps the caller's transaction usable for the error to propagate.
    """
    try:
        with transaction.atomic():
            instance.save(force_insert=True)
    except IntegrityError as error:
        cause = error.__cause__
        diag = getattr(cause, "diag", None)
        if getattr(cause, "sqlstate", None) == _UNIQUE_VIOLATION and diag is not None:
            match = _KEY_COLUMNS.match(diag.message_detail or "")
            if match and conflicts and match["columns"] in conflicts:
                raise conflicts[match["columns"]] from None
        raise
    return instance


def _code_taken(kind: str, code: str) -> dict[str, ConflictError]:
    return {
        "code": ConflictError(
            f"A {kind} with code {code!r} already exists.", code="code_taken", param="code"
        )
    }


def _action(instance: Model, verb: str) -> str:
    return f"{instance._meta.model_name}.{verb}"


def _record_create(instance: Model, *, actor: Actor, **extra: Any) -> None:
    after = audit_snapshot(instance) | extra
    audit_record(actor=actor, action=_action(instance, "create"), instance=instance, after=after)


def _apply(
    instance: M,
    changes: Mapping[str, Any],
    *,
    actor: Actor,
    relations: Mapping[str, Sequence[Model] | None] | None = None,
) -> M:
    """Save the changed fields (and many-to-many sets) of a locked row and record one audit
    entry; nothing is written or recorded when nothing differs.
    """
    changed = {
        field: value for field, value in changes.items() if getattr(instance, field) != value
    }
    changed_relations = {
        name: items
        for name, items in (relations or {}).items()
        if items is not None
        and set(getattr(instance, name).values_list("pk", flat=True)) != {i.pk for i in items}
    }
    if not changed and not changed_relations:
        return instance
    before = audit_snapshot(instance)
    for field, value in changed.items():
        setattr(instance, field, value)
    if changed:
        instance.save(update_fields=list(changed))
    for name, items in changed_relations.items():
        getattr(instance, name).set(items)
    audit_record(
        actor=actor,
        action=_action(instance, "update"),
        instance=instance,
        before=before,
        after=audit_snapshot(instance),
    )
    return instance


def _set_archived(instance: M, *, archived: bool, actor: Actor) -> M:
    """Archive (or bring back) a row; doing it twice changes nothing and records nothing."""
    if (instance.archived_at is not None) == archived:  # type: ignore[attr-defined]
        return instance
    before = audit_snapshot(instance)
    instance.archived_at = clock.now() if archived else None  # type: ignore[attr-defined]
    instance.save(update_fields=["archived_at"])
    audit_record(
        actor=actor,
        action=_action(instance, "archive" if archived else "unarchive"),
        instance=instance,
        before=before,
        after=audit_snapshot(instance),
    )
    return instance


def _archive(instance: M, *, actor: Actor) -> M:
    with transaction.atomic():
        locked = _set_archived(_locked(instance), archived=True, actor=actor)
    instance.archived_at = locked.archived_at  # type: ignore[attr-defined]
    return locked


def _unarchive(instance: M, *, actor: Actor) -> M:
    with transaction.atomic():
        locked = _set_archived(_locked(instance), archived=False, actor=actor)
    instance.archived_at = locked.archived_at  # type: ignore[attr-defined]
    return locked


def _resolve_price_list(price_list: PriceList | None, *, param: str) -> PriceList:
    resolved = price_list if price_list is not None else price_list_default()
    if resolved is None:
        raise ValidationError(
            "There is no default price list yet: create one first.",
            code="no_default_price_list",
            param=param,
        )
    _require_active(resolved, param=param, code="price_list_archived")
    return resolved


def _clean_effective_from(effective_from: date | None, *, param: str = "effective_from") -> date:
    today = clock.today()
    if effective_from is None:
        return today
    if effective_from < today:
        # A version dated in the past would rewrite which price was on offer back then.
        raise ValidationError(
            f"A new price version takes effect today ({today}) or later.",
            code="effective_from_in_past",
            param=param,
        )
    return effective_from


def _version_exists(kind: str, currency: str, price_list: PriceList, day: date) -> ConflictError:
    return ConflictError(
        f"A {kind} version in {currency} on price list {price_list.code!r} already takes "
        f"effect on {day}; prices are never edited, so choose another effective date.",
        code="price_version_exists",
        param="effective_from",
    )


# --- features -----------------------------------------------------------------------------------


def feature_create(*, code: str, name: str, description: str = "", actor: Actor) -> Feature:
    code = _clean_code(code)
    feature = Feature(
        code=code,
        name=_clean_text(name, param="name"),
        description=(description or "").strip(),
        created_at=clock.now(),
    )
    with transaction.atomic():
        _insert(feature, conflicts=_code_taken("feature", code))
        _record_create(feature, actor=actor)
    return feature


def feature_update(
    *,
    feature: Feature,
    name: str | Unset = UNSET,
    description: str | Unset = UNSET,
    actor: Actor,
) -> Feature:
    changes: dict[str, Any] = {}
    if name is not UNSET:
        changes["name"] = _clean_text(name, param="name")
    if description is not UNSET:
        changes["description"] = (description or "").strip()
    with transaction.atomic():
        return _apply(_locked(feature), changes, actor=actor)


def feature_archive(*, feature: Feature, actor: Actor) -> Feature:
    return _archive(feature, actor=actor)


def feature_unarchive(*, feature: Feature, actor: Actor) -> Feature:
    return _unarchive(feature, actor=actor)


# --- products -----------------------------------------------------------------------------------


def product_create(
    *,
    code: str,
    name: str,
    description: str = "",
    kind: str = Product.Kind.BASE,
    delivery: str = Product.Delivery.DIGITAL,
    metadata: Mapping[str, Any] | None = None,
    actor: Actor,
) -> Product:
    code = _clean_code(code)
    product = Product(
        code=code,
        name=_clean_text(name, param="name"),
        description=(description or "").strip(),
        kind=_clean_choice(kind, Product.Kind.values, param="kind"),
        delivery=_clean_choice(delivery, Product.Delivery.values, param="delivery"),
        metadata=_clean_metadata(metadata),
        created_at=clock.now(),
    )
    with transaction.atomic():
        _insert(product, conflicts=_code_taken("product", code))
        _record_create(product, actor=actor)
    return product


def product_update(
    *,
    product: Product,
    name: str | Unset = UNSET,
    description: str | Unset = UNSET,
    delivery: str | Unset = UNSET,
    metadata: Mapping[str, Any] | Unset = UNSET,
    actor: Actor,
) -> Product:
    changes: dict[str, Any] = {}
    if name is not UNSET:
        changes["name"] = _clean_text(name, param="name")
    if description is not UNSET:
        changes["description"] = (description or "").strip()
    if delivery is not UNSET:
        changes["delivery"] = _clean_choice(delivery, Product.Delivery.values, param="delivery")
    if metadata is not UNSET:
        changes["metadata"] = _clean_metadata(metadata)
    with transaction.atomic():
        return _apply(_locked(product), changes, actor=actor)


def product_archive(*, product: Product, actor: Actor) -> Product:
    """Archive a product: its plans stay for their subscribers but are no longer offered."""
    return _archive(product, actor=actor)


def product_unarchive(*, product: Product, actor: Actor) -> Product:
    return _unarchive(product, actor=actor)


# --- plans and their phases ---------------------------------------------------------------------


def plan_phases_validate(phases: Sequence[PhaseSpec], *, param: str = "phases") -> None:
    """Kill Bill's shape: [trial] -> [discount...] -> exactly one evergreen or fixed-term phase.

    Every phase but an evergreen one has a duration; only a fixed term may renew.
    """
    if not phases:
        raise ValidationError(
            "A plan needs at least its final (evergreen or fixed-term) phase.",
            code="phases_required",
            param=param,
        )
    kinds = PlanPhase.Kind
    seen_discount = False
    last = len(phases) - 1
    for index, phase in enumerate(phases):
        at = f"{param}[{index}]"
        kind = _clean_choice(phase.kind, kinds.values, param=f"{at}.kind")
        if index == last and kind not in _FINAL_PHASES:
            raise ValidationError(
                "The last phase must be evergreen or fixed_term.",
                code="final_phase_required",
                param=f"{at}.kind",
            )
        if index < last and kind in _FINAL_PHASES:
            raise ValidationError(
                "An evergreen or fixed-term phase ends the plan: only trial and discount "
                "phases come before it.",
                code="invalid_phase_order",
                param=f"{at}.kind",
            )
        if kind == kinds.TRIAL and (index > 0 or seen_discount):
            raise ValidationError(
                "A plan has at most one trial, and it comes first.",
                code="invalid_phase_order",
                param=f"{at}.kind",
            )
        seen_discount = seen_discount or kind == kinds.DISCOUNT
        if kind == kinds.EVERGREEN:
            if phase.duration_count is not None or phase.duration_unit:
                raise ValidationError(
                    "An evergreen phase runs until cancelled: it has no duration.",
                    code="duration_not_allowed",
                    param=f"{at}.duration_count",
                )
        else:
            if phase.duration_unit not in _INTERVALS:
                raise ValidationError(
                    f"A {kind} phase needs a duration unit ({', '.join(sorted(_INTERVALS))}).",
                    code="duration_required",
                    param=f"{at}.duration_unit",
                )
            if phase.duration_count is None:
                raise ValidationError(
                    f"A {kind} phase needs a duration.",
                    code="duration_required",
                    param=f"{at}.duration_count",
                )
            _clean_positive_int(phase.duration_count, param=f"{at}.duration_count")
        if phase.renews and kind != kinds.FIXED_TERM:
            raise ValidationError(
                "Only a fixed-term phase can renew.",
                code="renews_not_allowed",
                param=f"{at}.renews",
            )
        seen_prices: set[tuple[int | None, str]] = set()
        for price_index, price in enumerate(phase.prices):
            at_price = f"{at}.prices[{price_index}]"
            currency = _clean_currency(price.currency, param=f"{at_price}.currency")
            key = (price.price_list.pk if price.price_list else None, currency)
            if key in seen_prices:
                raise ValidationError(
                    f"Two prices in {currency} on the same price list for one phase.",
                    code="duplicate_price",
                    param=f"{at_price}.currency",
                )
            seen_prices.add(key)


def _clean_plan_interval(billing_interval: str, interval_count: int) -> None:
    _clean_choice(billing_interval, [unit.value for unit in IntervalUnit], param="billing_interval")
    _clean_positive_int(interval_count, param="interval_count", allow_none=False)


def _clean_billing_day(billing_day: int | None, billing_interval: str) -> int | None:
    if billing_day is None:
        return None
    if isinstance(billing_day, bool) or not isinstance(billing_day, int):
        raise ValidationError("`billing_day` is a day of the month.", param="billing_day")
    if not 1 <= billing_day <= 31:
        raise ValidationError(
            "`billing_day` is a day of the month from 1 to 31.",
            code="invalid_billing_day",
            param="billing_day",
        )
    if billing_interval in {IntervalUnit.DAY, IntervalUnit.WEEK}:
        raise ValidationError(
            "Calendar billing days apply to monthly, quarterly and yearly plans only.",
            code="invalid_billing_day",
            param="billing_day",
        )
    return billing_day


def _clean_quantities(min_quantity: int, max_quantity: int | None) -> None:
    _clean_positive_int(min_quantity, param="min_quantity", allow_none=False)
    if max_quantity is not None:
        _clean_positive_int(max_quantity, param="max_quantity")
        if max_quantity < min_quantity:
            raise ValidationError(
                "`max_quantity` cannot be below `min_quantity`.",
                code="invalid_quantity",
                param="max_quantity",
            )


def _clean_features(features: Iterable[Feature], *, kept: Iterable[int] = ()) -> list[Feature]:
    """Features to give a plan: new ones must be active; ones it already has may stay."""
    cleaned, kept_ids = list(dict.fromkeys(features)), set(kept)
    for index, feature in enumerate(cleaned):
        if feature.pk not in kept_ids:
            _require_active(feature, param=f"features[{index}]", code="feature_archived")
    return cleaned


def _clean_addons(
    addons: Iterable[Plan], *, billing_interval: str, interval_count: int, plan: Plan | None
) -> list[Plan]:
    cleaned = list(dict.fromkeys(addons))
    kept = set(plan.addons.values_list("pk", flat=True)) if plan is not None else set()
    for index, addon in enumerate(cleaned):
        at = f"addons[{index}]"
        if plan is not None and addon.pk == plan.pk:
            raise ValidationError(
                "A plan cannot be its own add-on.", code="invalid_addon", param=at
            )
        if addon.pk not in kept:
            _require_active(addon, param=at, code="plan_archived")
        if addon.product.kind != Product.Kind.ADDON:
            raise ValidationError(
                f"{addon.code} is not an add-on plan (its product is not of kind addon).",
                code="invalid_addon",
                param=at,
            )
        if (addon.billing_interval, addon.interval_count) != (billing_interval, interval_count):
            raise ValidationError(
                f"Add-on {addon.code} bills every {addon.interval_count} "
                f"{addon.billing_interval}: add-ons bill with the plan, on the same interval.",
                code="addon_interval_mismatch",
                param=at,
            )
    return cleaned


def plan_create(
    *,
    product: Product,
    code: str,
    name: str,
    billing_interval: str,
    phases: Sequence[PhaseSpec],
    interval_count: int = 1,
    description: str = "",
    tier_rank: int = 0,
    billing_day: int | None = None,
    min_quantity: int = 1,
    max_quantity: int | None = None,
    features: Iterable[Feature] = (),
    addons: Iterable[Plan] = (),
    metadata: Mapping[str, Any] | None = None,
    actor: Actor,
) -> Plan:
    """Create a plan with its phases (fixed from now on) and, optionally, their first prices."""
    _require_active(product, param="product", code="product_archived")
    code = _clean_code(code)
    _clean_plan_interval(billing_interval, interval_count)
    if isinstance(tier_rank, bool) or not isinstance(tier_rank, int) or not 0 <= tier_rank <= 32767:
        raise ValidationError("`tier_rank` is 0 or more.", param="tier_rank")
    _clean_quantities(min_quantity, max_quantity)
    plan_phases_validate(phases)
    feature_list = _clean_features(features)
    addon_list = _clean_addons(
        addons, billing_interval=billing_interval, interval_count=interval_count, plan=None
    )
    plan = Plan(
        product=product,
        code=code,
        name=_clean_text(name, param="name"),
        description=(description or "").strip(),
        tier_rank=tier_rank,
        billing_interval=billing_interval,
        interval_count=interval_count,
        billing_day=_clean_billing_day(billing_day, billing_interval),
        min_quantity=min_quantity,
        max_quantity=max_quantity,
        metadata=_clean_metadata(metadata),
        created_at=clock.now(),
    )
    with transaction.atomic():
        _insert(plan, conflicts=_code_taken("plan", code))
        plan.features.set(feature_list)
        plan.addons.set(addon_list)
        _record_create(plan, actor=actor)
        for sequence, spec in enumerate(phases, start=1):
            phase = PlanPhase.objects.create(
                plan=plan,
                sequence=sequence,
                kind=spec.kind,
                duration_unit=spec.duration_unit if spec.kind != PlanPhase.Kind.EVERGREEN else "",
                duration_count=spec.duration_count,
                renews=spec.renews,
            )
            _record_create(phase, actor=actor)
            for index, price in enumerate(spec.prices):
                _price_insert(
                    phase=phase,
                    currency=price.currency,
                    amount=price.amount,
                    setup_fee=price.setup_fee,
                    price_list=price.price_list,
                    effective_from=None,
                    actor=actor,
                    param=f"phases[{sequence - 1}].prices[{index}]",
                )
    return plan


def plan_update(
    *,
    plan: Plan,
    name: str | Unset = UNSET,
    description: str | Unset = UNSET,
    tier_rank: int | Unset = UNSET,
    min_quantity: int | Unset = UNSET,
    max_quantity: int | None | Unset = UNSET,
    features: Iterable[Feature] | Unset = UNSET,
    addons: Iterable[Plan] | Unset = UNSET,
    metadata: Mapping[str, Any] | Unset = UNSET,
    actor: Actor,
) -> Plan:
    """Change what a plan's subscribers see, never what they are billed: the product, code,
    interval, billing day and phases are fixed once the plan exists (make a new plan instead).
    """
    changes: dict[str, Any] = {}
    if name is not UNSET:
        changes["name"] = _clean_text(name, param="name")
    if description is not UNSET:
        changes["description"] = (description or "").strip()
    if tier_rank is not UNSET:
        if isinstance(tier_rank, bool) or not 0 <= tier_rank <= 32767:
            raise ValidationError("`tier_rank` is 0 or more.", param="tier_rank")
        changes["tier_rank"] = tier_rank
    new_min = plan.min_quantity if min_quantity is UNSET else min_quantity
    new_max = plan.max_quantity if max_quantity is UNSET else max_quantity
    if min_quantity is not UNSET or max_quantity is not UNSET:
        _clean_quantities(new_min, new_max)
        changes["min_quantity"], changes["max_quantity"] = new_min, new_max
    if metadata is not UNSET:
        changes["metadata"] = _clean_metadata(metadata)
    feature_list = (
        None
        if features is UNSET
        else _clean_features(features, kept=plan.features.values_list("pk", flat=True))
    )
    addon_list = (
        None
        if addons is UNSET
        else _clean_addons(
            addons,
            billing_interval=plan.billing_interval,
            interval_count=plan.interval_count,
            plan=plan,
        )
    )
    with transaction.atomic():
        return _apply(
            _locked(plan),
            changes,
            actor=actor,
            relations={"features": feature_list, "addons": addon_list},
        )


def plan_archive(*, plan: Plan, actor: Actor) -> Plan:
    """Archive a plan: it is never deleted (subscribers keep it) but is no longer offered."""
    return _archive(plan, actor=actor)


def plan_unarchive(*, plan: Plan, actor: Actor) -> Plan:
    return _unarchive(plan, actor=actor)


# --- prices -------------------------------------------------------------------------------------


def price_clean_input(
    *,
    phase: PlanPhase,
    currency: str,
    amount: Decimal | int | str,
    setup_fee: Decimal | int | str = Decimal("0"),
    price_list: PriceList | None = None,
    effective_from: date | None = None,
    param: str = "",
) -> Price:
    """The unsaved price version these inputs make (the admin's forms check with it too).

    The amounts have no more decimals than the currency (JPY 0, USD 2, KWD 3), the list is
    the default one when none is given, and the version starts today or later.
    """
    prefix = f"{param}." if param else ""
    currency = _clean_currency(currency, param=f"{prefix}currency")
    cleaned_amount = _clean_money(amount, currency, param=f"{prefix}amount")
    cleaned_fee = _clean_money(setup_fee, currency, param=f"{prefix}setup_fee")
    resolved_list = _resolve_price_list(price_list, param=f"{prefix}price_list")
    day = _clean_effective_from(effective_from, param=f"{prefix}effective_from")
    if phase.kind == PlanPhase.Kind.TRIAL and cleaned_amount != 0:
        raise ValidationError(
            "A trial phase is free: its recurring amount is 0.",
            code="trial_not_free",
            param=f"{prefix}amount",
        )
    return Price(
        phase=phase,
        price_list=resolved_list,
        currency=currency,
        amount=cleaned_amount,
        setup_fee=cleaned_fee,
        effective_from=day,
        created_at=clock.now(),
    )


def _price_insert(
    *,
    phase: PlanPhase,
    currency: str,
    amount: Decimal | int | str,
    setup_fee: Decimal | int | str,
    price_list: PriceList | None,
    effective_from: date | None,
    actor: Actor,
    param: str = "",
) -> Price:
    price = price_clean_input(
        phase=phase,
        currency=currency,
        amount=amount,
        setup_fee=setup_fee,
        price_list=price_list,
        effective_from=effective_from,
        param=param,
    )
    conflict = _version_exists("price", price.currency, price.price_list, price.effective_from)
    _insert(price, conflicts={"phase_id, price_list_id, currency, effective_from": conflict})
    _record_create(price, actor=actor)
    return price


def price_create(
    *,
    phase: PlanPhase,
    currency: str,
    amount: Decimal | int | str,
    setup_fee: Decimal | int | str = Decimal("0"),
    price_list: PriceList | None = None,
    effective_from: date | None = None,
    actor: Actor,
) -> Price:
    """Add a price version for a phase in a currency on a price list (the default list when
    none is given), in effect from `effective_from` (today when not given).

    Versions are never edited: subscribers keep the version they signed up at, and new
    subscriptions take the version in effect on their start date.
    """
    with transaction.atomic():
        return _price_insert(
            phase=phase,
            currency=currency,
            amount=amount,
            setup_fee=setup_fee,
            price_list=price_list,
            effective_from=effective_from,
            actor=actor,
        )


# --- price lists --------------------------------------------------------------------------------


def price_list_clean_input(
    *, kind: str, countries: Sequence[str], segment: str, exclude: PriceList | None = None
) -> tuple[list[str], str]:
    """Countries and segment that match the kind, not already claimed by another active list
    (the admin's forms check with it too)."""
    kinds = PriceList.Kind
    cleaned_countries = list(
        dict.fromkeys(
            places.normalize_country(country, param=f"countries[{index}]")
            for index, country in enumerate(countries)
        )
    )
    cleaned_segment = (segment or "").strip().lower()
    if kind == kinds.GEOGRAPHY and not cleaned_countries:
        raise ValidationError(
            "A geography price list names its countries.",
            code="countries_required",
            param="countries",
        )
    if kind != kinds.GEOGRAPHY and cleaned_countries:
        raise ValidationError(
            "Only a geography price list has countries.",
            code="countries_not_allowed",
            param="countries",
        )
    if kind == kinds.SEGMENT and not _CODE.match(cleaned_segment):
        raise ValidationError(
            "A segment price list names its segment (a slug such as `education`).",
            code="segment_required",
            param="segment",
        )
    if kind != kinds.SEGMENT and cleaned_segment:
        raise ValidationError(
            "Only a segment price list has a segment.",
            code="segment_not_allowed",
            param="segment",
        )
    others = PriceList.objects.active()
    if exclude is not None:
        others = others.exclude(pk=exclude.pk)
    if cleaned_countries:
        # One list per country, so a buyer's list is never a matter of chance.
        clash = others.filter(kind=kinds.GEOGRAPHY, countries__overlap=cleaned_countries).first()
        if clash is not None:
            shared = sorted(set(clash.countries) & set(cleaned_countries))
            raise ConflictError(
                f"Price list {clash.code!r} already covers {', '.join(shared)}.",
                code="country_already_priced",
                param="countries",
            )
    if cleaned_segment:
        clash = others.filter(kind=kinds.SEGMENT, segment=cleaned_segment).first()
        if clash is not None:
            raise ConflictError(
                f"Price list {clash.code!r} already prices segment {cleaned_segment!r}.",
                code="segment_already_priced",
                param="segment",
            )
    return cleaned_countries, cleaned_segment


def price_list_create(
    *,
    code: str,
    name: str,
    kind: str,
    countries: Sequence[str] = (),
    segment: str = "",
    actor: Actor,
) -> PriceList:
    code = _clean_code(code)
    kind = _clean_choice(kind, PriceList.Kind.values, param="kind")
    with transaction.atomic():
        _lock("price_list")
        cleaned_countries, cleaned_segment = price_list_clean_input(
            kind=kind, countries=countries, segment=segment, exclude=None
        )
        price_list = PriceList(
            code=code,
            name=_clean_text(name, param="name"),
            kind=kind,
            countries=cleaned_countries,
            segment=cleaned_segment,
            created_at=clock.now(),
        )
        conflicts = _code_taken("price list", code) | {
            "kind": ConflictError(
                "There is already a default price list; there can be only one.",
                code="default_price_list_exists",
                param="kind",
            )
        }
        _insert(price_list, conflicts=conflicts)
        _record_create(price_list, actor=actor)
    return price_list


def price_list_update(
    *,
    price_list: PriceList,
    name: str | Unset = UNSET,
    countries: Sequence[str] | Unset = UNSET,
    segment: str | Unset = UNSET,
    actor: Actor,
) -> PriceList:
    changes: dict[str, Any] = {}
    if name is not UNSET:
        changes["name"] = _clean_text(name, param="name")
    with transaction.atomic():
        _lock("price_list")
        locked = _locked(price_list)
        if countries is not UNSET or segment is not UNSET:
            new_countries, new_segment = price_list_clean_input(
                kind=locked.kind,
                countries=locked.countries if countries is UNSET else countries,
                segment=locked.segment if segment is UNSET else segment,
                exclude=locked,
            )
            changes["countries"], changes["segment"] = new_countries, new_segment
        return _apply(locked, changes, actor=actor)


def price_list_archive(*, price_list: PriceList, actor: Actor) -> PriceList:
    """Archive a price list: buyers no longer get it; prices already sold from it stay."""
    if price_list.kind == PriceList.Kind.DEFAULT:
        raise ConflictError(
            "The default price list is every price's fallback; it cannot be archived.",
            code="default_price_list",
        )
    return _archive(price_list, actor=actor)


def price_list_unarchive(*, price_list: PriceList, actor: Actor) -> PriceList:
    with transaction.atomic():
        _lock("price_list")
        locked = _locked(price_list)
        if locked.archived_at is not None:
            price_list_clean_input(
                kind=locked.kind, countries=locked.countries, segment=locked.segment, exclude=locked
            )
        locked = _set_archived(locked, archived=False, actor=actor)
    price_list.archived_at = locked.archived_at
    return locked


# --- bundles ------------------------------------------------------------------------------------


def bundle_price_clean_input(
    *,
    bundle: Bundle,
    currency: str,
    amount: Decimal | int | str,
    price_list: PriceList | None = None,
    effective_from: date | None = None,
    param: str = "",
) -> BundlePrice:
    """The unsaved bundle price version these inputs make (same rules as a plan's price)."""
    prefix = f"{param}." if param else ""
    if bundle.pricing != Bundle.Pricing.FIXED_PRICE:
        raise ValidationError(
            "A percent-discount bundle is priced from its components; it has no own price.",
            code="bundle_prices_not_allowed",
            param=param or "bundle",
        )
    currency = _clean_currency(currency, param=f"{prefix}currency")
    return BundlePrice(
        bundle=bundle,
        price_list=_resolve_price_list(price_list, param=f"{prefix}price_list"),
        currency=currency,
        amount=_clean_money(amount, currency, param=f"{prefix}amount"),
        effective_from=_clean_effective_from(effective_from, param=f"{prefix}effective_from"),
        created_at=clock.now(),
    )


def _bundle_price_insert(
    *,
    bundle: Bundle,
    currency: str,
    amount: Decimal | int | str,
    price_list: PriceList | None,
    effective_from: date | None,
    actor: Actor,
    param: str = "",
) -> BundlePrice:
    bundle_price = bundle_price_clean_input(
        bundle=bundle,
        currency=currency,
        amount=amount,
        price_list=price_list,
        effective_from=effective_from,
        param=param,
    )
    conflict = _version_exists(
        "bundle price", bundle_price.currency, bundle_price.price_list, bundle_price.effective_from
    )
    _insert(
        bundle_price,
        conflicts={"bundle_id, price_list_id, currency, effective_from": conflict},
    )
    _record_create(bundle_price, actor=actor)
    return bundle_price


def bundle_create(
    *,
    code: str,
    name: str,
    pricing: str,
    components: Sequence[BundleComponentSpec],
    discount_percent: Decimal | int | str | None = None,
    prices: Sequence[BundlePriceSpec] = (),
    description: str = "",
    actor: Actor,
) -> Bundle:
    """A bundle of at least two plans billed on one interval, priced as a whole per currency
    (fixed_price, `prices`) or at `discount_percent` off the components (percent_discount).
    """
    code = _clean_code(code)
    pricing = _clean_choice(pricing, Bundle.Pricing.values, param="pricing")
    if len(components) < 2:
        raise ValidationError(
            "A bundle sells at least two plans together.",
            code="bundle_components_required",
            param="components",
        )
    intervals = set()
    seen: set[int] = set()
    for index, component in enumerate(components):
        at = f"components[{index}]"
        _require_active(component.plan, param=f"{at}.plan", code="plan_archived")
        if component.plan.pk in seen:
            raise ValidationError(
                f"Plan {component.plan.code} appears twice; use its quantity instead.",
                code="duplicate_component",
                param=f"{at}.plan",
            )
        seen.add(component.plan.pk)
        _clean_positive_int(component.quantity, param=f"{at}.quantity", allow_none=False)
        intervals.add((component.plan.billing_interval, component.plan.interval_count))
    if len(intervals) > 1:
        raise ValidationError(
            "All plans of a bundle bill on the same interval.",
            code="bundle_interval_mismatch",
            param="components",
        )
    percent: Decimal | None = None
    if pricing == Bundle.Pricing.PERCENT_DISCOUNT:
        if discount_percent is None:
            raise ValidationError(
                "A percent-discount bundle needs `discount_percent`.",
                code="discount_required",
                param="discount_percent",
            )
        percent = _clean_percent(
            discount_percent, param="discount_percent", places=_PERCENT_PLACES, allow_zero=False
        )
        if prices:
            raise ValidationError(
                "A percent-discount bundle is priced from its components; it has no own price.",
                code="bundle_prices_not_allowed",
                param="prices",
            )
    else:
        if discount_percent is not None:
            raise ValidationError(
                "A fixed-price bundle has prices, not a discount.",
                code="discount_not_allowed",
                param="discount_percent",
            )
        if not prices:
            raise ValidationError(
                "A fixed-price bundle needs a price in at least one currency.",
                code="bundle_price_required",
                param="prices",
            )
    bundle = Bundle(
        code=code,
        name=_clean_text(name, param="name"),
        description=(description or "").strip(),
        pricing=pricing,
        discount_percent=percent,
        created_at=clock.now(),
    )
    with transaction.atomic():
        _insert(bundle, conflicts=_code_taken("bundle", code))
        BundleComponent.objects.bulk_create(
            BundleComponent(bundle=bundle, plan=component.plan, quantity=component.quantity)
            for component in components
        )
        _record_create(
            bundle,
            actor=actor,
            components=[
                {"plan": component.plan.pk, "quantity": component.quantity}
                for component in components
            ],
        )
        for index, price in enumerate(prices):
            _bundle_price_insert(
                bundle=bundle,
                currency=price.currency,
                amount=price.amount,
                price_list=price.price_list,
                effective_from=None,
                actor=actor,
                param=f"prices[{index}]",
            )
    return bundle


def bundle_update(
    *,
    bundle: Bundle,
    name: str | Unset = UNSET,
    description: str | Unset = UNSET,
    actor: Actor,
) -> Bundle:
    changes: dict[str, Any] = {}
    if name is not UNSET:
        changes["name"] = _clean_text(name, param="name")
    if description is not UNSET:
        changes["description"] = (description or "").strip()
    with transaction.atomic():
        return _apply(_locked(bundle), changes, actor=actor)


def bundle_price_create(
    *,
    bundle: Bundle,
    currency: str,
    amount: Decimal | int | str,
    price_list: PriceList | None = None,
    effective_from: date | None = None,
    actor: Actor,
) -> BundlePrice:
    """A new price version of a fixed-price bundle (same rules as `price_create`)."""
    with transaction.atomic():
        return _bundle_price_insert(
            bundle=bundle,
            currency=currency,
            amount=amount,
            price_list=price_list,
            effective_from=effective_from,
            actor=actor,
        )


def bundle_archive(*, bundle: Bundle, actor: Actor) -> Bundle:
    return _archive(bundle, actor=actor)


def bundle_unarchive(*, bundle: Bundle, actor: Actor) -> Bundle:
    return _unarchive(bundle, actor=actor)


# --- coupons and promotion codes ----------------------------------------------------------------


def _clean_max_redemptions(value: int | None, *, already: int = 0) -> int | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not max(1, already) <= value <= 2_147_483_647
    ):
        raise ValidationError(
            f"`max_redemptions` must be at least {max(1, already)}.",
            code="invalid_max_redemptions",
            param="max_redemptions",
        )
    return value


def _clean_coupon_plans(plans: Iterable[Plan], *, kept: Iterable[int] = ()) -> list[Plan]:
    """Plans to restrict a coupon to: new ones must be active; ones already there may stay."""
    cleaned, kept_ids = list(dict.fromkeys(plans)), set(kept)
    for index, plan in enumerate(cleaned):
        if plan.pk not in kept_ids:
            _require_active(plan, param=f"plans[{index}]", code="plan_archived")
    return cleaned


def coupon_amount_clean_input(
    *, currency: str, amount_off: Decimal | int | str, param: str = ""
) -> tuple[str, Decimal]:
    """A fixed coupon's amount off in one currency: positive, with the currency's decimals."""
    prefix = f"{param}." if param else ""
    currency = _clean_currency(currency, param=f"{prefix}currency")
    return currency, _clean_money(amount_off, currency, param=f"{prefix}amount_off", positive=True)


def coupon_create(
    *,
    code: str,
    name: str,
    discount_type: str,
    duration: str,
    percent_off: Decimal | int | str | None = None,
    amounts: Sequence[CouponAmountSpec] = (),
    duration_cycles: int | None = None,
    max_redemptions: int | None = None,
    redeem_by: datetime | None = None,
    plans: Iterable[Plan] = (),
    metadata: Mapping[str, Any] | None = None,
    actor: Actor,
) -> Coupon:
    """A discount: `percent_off`, or an amount off per currency; applied once, for
    `duration_cycles` billing cycles (repeating) or forever; optionally limited in number of
    redemptions, in time (`redeem_by`) and to some plans (none: every plan).
    """
    code = _clean_code(code)
    discount_type = _clean_choice(discount_type, Coupon.DiscountType.values, param="discount_type")
    duration = _clean_choice(duration, Coupon.Duration.values, param="duration")
    percent: Decimal | None = None
    cleaned_amounts: list[tuple[str, Decimal]] = []
    if discount_type == Coupon.DiscountType.PERCENT:
        if percent_off is None:
            raise ValidationError(
                "A percent coupon needs `percent_off`.",
                code="percent_required",
                param="percent_off",
            )
        percent = _clean_percent(
            percent_off, param="percent_off", places=_PERCENT_PLACES, allow_zero=False
        )
        if amounts:
            raise ValidationError(
                "A percent coupon has no amounts.", code="amounts_not_allowed", param="amounts"
            )
    else:
        if percent_off is not None:
            raise ValidationError(
                "A fixed coupon takes amounts off, not a percentage.",
                code="percent_not_allowed",
                param="percent_off",
            )
        if not amounts:
            raise ValidationError(
                "A fixed coupon needs an amount off in at least one currency.",
                code="amounts_required",
                param="amounts",
            )
        for index, spec in enumerate(amounts):
            at = f"amounts[{index}]"
            currency, amount_off = coupon_amount_clean_input(
                currency=spec.currency, amount_off=spec.amount_off, param=at
            )
            if currency in {seen for seen, _ in cleaned_amounts}:
                raise ValidationError(
                    f"Two amounts in {currency}.", code="duplicate_currency", param=f"{at}.currency"
                )
            cleaned_amounts.append((currency, amount_off))
    if duration == Coupon.Duration.REPEATING:
        _clean_positive_int(duration_cycles, param="duration_cycles", allow_none=False)
    elif duration_cycles is not None:
        raise ValidationError(
            "Only a repeating coupon has `duration_cycles`.",
            code="duration_cycles_not_allowed",
            param="duration_cycles",
        )
    coupon = Coupon(
        code=code,
        name=_clean_text(name, param="name"),
        discount_type=discount_type,
        percent_off=percent,
        duration=duration,
        duration_cycles=duration_cycles,
        max_redemptions=_clean_max_redemptions(max_redemptions),
        redeem_by=_clean_future(redeem_by, param="redeem_by"),
        metadata=_clean_metadata(metadata),
        created_at=clock.now(),
    )
    plan_list = _clean_coupon_plans(plans)
    with transaction.atomic():
        _insert(coupon, conflicts=_code_taken("coupon", code))
        coupon.plans.set(plan_list)
        CouponAmount.objects.bulk_create(
            CouponAmount(coupon=coupon, currency=currency, amount_off=amount)
            for currency, amount in cleaned_amounts
        )
        _record_create(
            coupon,
            actor=actor,
            amounts={currency: str(amount) for currency, amount in cleaned_amounts},
        )
    return coupon


def coupon_update(
    *,
    coupon: Coupon,
    name: str | Unset = UNSET,
    max_redemptions: int | None | Unset = UNSET,
    redeem_by: datetime | None | Unset = UNSET,
    plans: Iterable[Plan] | Unset = UNSET,
    metadata: Mapping[str, Any] | Unset = UNSET,
    actor: Actor,
) -> Coupon:
    """Change a coupon's limits; its discount and duration are fixed (make a new coupon)."""
    changes: dict[str, Any] = {}
    if name is not UNSET:
        changes["name"] = _clean_text(name, param="name")
    if redeem_by is not UNSET:
        changes["redeem_by"] = _clean_future(redeem_by, param="redeem_by")
    if metadata is not UNSET:
        changes["metadata"] = _clean_metadata(metadata)
    plan_list = (
        None
        if plans is UNSET
        else _clean_coupon_plans(plans, kept=coupon.plans.values_list("pk", flat=True))
    )
    with transaction.atomic():
        locked = _locked(coupon)
        if max_redemptions is not UNSET:
            changes["max_redemptions"] = _clean_max_redemptions(
                max_redemptions, already=locked.times_redeemed
            )
        return _apply(locked, changes, actor=actor, relations={"plans": plan_list})


def coupon_archive(*, coupon: Coupon, actor: Actor) -> Coupon:
    """Archive a coupon: no new redemptions; discounts already granted run their course."""
    return _archive(coupon, actor=actor)


def coupon_unarchive(*, coupon: Coupon, actor: Actor) -> Coupon:
    return _unarchive(coupon, actor=actor)


def coupon_redeem(
    *,
    coupon: Coupon | None = None,
    promotion_code: PromotionCode | None = None,
    plan: Plan | None = None,
    currency: str | None = None,
    first_time_customer: bool = True,
    actor: Actor,
) -> Coupon:
    """Count one redemption of a coupon (directly or through a promotion code).

    The rows are locked and checked again under the lock, and the database refuses a count
    above the maximum, so concurrent redemptions never exceed `max_redemptions`. Meant to run
    inside the transaction of the write that applies the discount (a new subscription).
    """
    with transaction.atomic():
        locked_code = _locked(promotion_code) if promotion_code is not None else None
        target = locked_code.coupon if locked_code is not None else coupon
        if target is None:
            raise TypeError("coupon_redeem needs a coupon or a promotion code")
        locked_coupon = _locked(target)
        if locked_code is not None:
            locked_code.coupon = locked_coupon
        coupon_redeemable(
            coupon=locked_coupon,
            promotion_code=locked_code,
            plan=plan,
            currency=currency,
            first_time_customer=first_time_customer,
        )
        for row in (locked_coupon, locked_code):
            if row is None:
                continue
            before = audit_snapshot(row)
            row.times_redeemed += 1
            row.save(update_fields=["times_redeemed"])
            audit_record(
                actor=actor,
                action=_action(row, "redeem"),
                instance=row,
                before=before,
                after=audit_snapshot(row),
            )
    return locked_coupon


def _clean_promotion_code(code: str) -> str:
    value = (code or "").strip().upper()
    if not _PROMOTION_CODE.match(value) or len(value) > 64:
        raise ValidationError(
            "A promotion code is 1 to 64 letters, digits, dashes or underscores (kept uppercase).",
            code="invalid_code",
            param="code",
        )
    return value


def promotion_code_create(
    *,
    coupon: Coupon,
    code: str,
    max_redemptions: int | None = None,
    expires_at: datetime | None = None,
    first_time_only: bool = False,
    actor: Actor,
) -> PromotionCode:
    """A code customers type (SPRING25) that redeems `coupon`, with its own limits."""
    _require_active(coupon, param="coupon", code="coupon_archived")
    code = _clean_promotion_code(code)
    promotion_code = PromotionCode(
        coupon=coupon,
        code=code,
        active=True,
        max_redemptions=_clean_max_redemptions(max_redemptions),
        expires_at=_clean_future(expires_at, param="expires_at"),
        first_time_only=bool(first_time_only),
        created_at=clock.now(),
    )
    with transaction.atomic():
        _insert(promotion_code, conflicts=_code_taken("promotion code", code))
        _record_create(promotion_code, actor=actor)
    return promotion_code


def promotion_code_update(
    *,
    promotion_code: PromotionCode,
    max_redemptions: int | None | Unset = UNSET,
    expires_at: datetime | None | Unset = UNSET,
    first_time_only: bool | Unset = UNSET,
    actor: Actor,
) -> PromotionCode:
    changes: dict[str, Any] = {}
    if expires_at is not UNSET:
        changes["expires_at"] = _clean_future(expires_at, param="expires_at")
    if first_time_only is not UNSET:
        changes["first_time_only"] = bool(first_time_only)
    with transaction.atomic():
        locked = _locked(promotion_code)
        if max_redemptions is not UNSET:
            changes["max_redemptions"] = _clean_max_redemptions(
                max_redemptions, already=locked.times_redeemed
            )
        return _apply(locked, changes, actor=actor)


def _set_active(
    instance: M, *, active: bool, actor: Actor, conflict: ConflictError | None = None
) -> M:
    """Flip the `active` flag of a locked row (archive = deactivate); twice changes nothing.

    `conflict` is raised when a unique constraint refuses the activation.
    """
    if instance.active == active:  # type: ignore[attr-defined]
        return instance
    before = audit_snapshot(instance)
    instance.active = active  # type: ignore[attr-defined]
    try:
        with transaction.atomic():
            instance.save(update_fields=["active"])
    except IntegrityError as error:
        if conflict is None or getattr(error.__cause__, "sqlstate", None) != _UNIQUE_VIOLATION:
            raise
        raise conflict from None
    audit_record(
        actor=actor,
        action=_action(instance, "unarchive" if active else "archive"),
        instance=instance,
        before=before,
        after=audit_snapshot(instance),
    )
    return instance


def promotion_code_archive(*, promotion_code: PromotionCode, actor: Actor) -> PromotionCode:
    """Deactivate a promotion code: customers can no longer redeem it."""
    with transaction.atomic():
        locked = _set_active(_locked(promotion_code), active=False, actor=actor)
    promotion_code.active = locked.active
    return locked


def promotion_code_unarchive(*, promotion_code: PromotionCode, actor: Actor) -> PromotionCode:
    with transaction.atomic():
        locked = _locked(promotion_code)
        if not locked.active:
            _require_active(locked.coupon, param="coupon", code="coupon_archived")
        locked = _set_active(locked, active=True, actor=actor)
    promotion_code.active = locked.active
    return locked


# --- tax rates ----------------------------------------------------------------------------------


def _tax_rate_conflict(country: str, region: str) -> ConflictError:
    place = f"{country}-{region}" if region else country
    existing = TaxRate.objects.filter(active=True, country=country, region=region).first()
    which = f" ({existing.name}, {existing.percentage}%, id {existing.pk})" if existing else ""
    return ConflictError(
        f"{place} already has an active tax rate{which}; archive it before activating another.",
        code="tax_rate_conflict",
        param="region" if region else "country",
    )


def tax_rate_create(
    *,
    name: str,
    country: str,
    percentage: Decimal | int | str,
    region: str = "",
    inclusive: bool = False,
    active: bool = True,
    actor: Actor,
) -> TaxRate:
    """A tax rate for a country, or for one of its subdivisions (which then wins over the
    country-wide rate). Its percentage and place are fixed: a new rate replaces an old one.
    """
    country = places.normalize_country(country)
    region = places.normalize_region(region, country=country)
    tax_rate = TaxRate(
        name=_clean_text(name, param="name", max_length=100),
        country=country,
        region=region,
        percentage=_clean_percent(
            percentage, param="percentage", places=_TAX_PERCENT_PLACES, allow_zero=True
        ),
        inclusive=bool(inclusive),
        active=bool(active),
        created_at=clock.now(),
    )
    with transaction.atomic():
        conflict = {"country, region": _tax_rate_conflict(country, region)} if active else None
        _insert(tax_rate, conflicts=conflict)
        _record_create(tax_rate, actor=actor)
    return tax_rate


def tax_rate_update(*, tax_rate: TaxRate, name: str | Unset = UNSET, actor: Actor) -> TaxRate:
    changes: dict[str, Any] = {}
    if name is not UNSET:
        changes["name"] = _clean_text(name, param="name", max_length=100)
    with transaction.atomic():
        return _apply(_locked(tax_rate), changes, actor=actor)


def tax_rate_archive(*, tax_rate: TaxRate, actor: Actor) -> TaxRate:
    """Deactivate a tax rate: no longer applied to new invoices."""
    with transaction.atomic():
        locked = _set_active(_locked(tax_rate), active=False, actor=actor)
    tax_rate.active = locked.active
    return locked


def tax_rate_unarchive(*, tax_rate: TaxRate, actor: Actor) -> TaxRate:
    """Activate a tax rate again; refused while another rate is active for the same place."""
    with transaction.atomic():
        locked = _locked(tax_rate)
        conflict = None if locked.active else _tax_rate_conflict(locked.country, locked.region)
        locked = _set_active(locked, active=True, actor=actor, conflict=conflict)
    tax_rate.active = locked.active
    return locked


# --- meters and metered prices ------------------------------------------------------------------


def meter_create(
    *,
    code: str,
    name: str,
    aggregation: str,
    field_name: str = "",
    unit_label: str = "unit",
    actor: Actor,
) -> Meter:
    """What usage is counted: events counted, or a property summed, maxed or counted distinct."""
    code = _clean_code(code)
    aggregation = _clean_choice(aggregation, Meter.Aggregation.values, param="aggregation")
    field_name = (field_name or "").strip()
    if aggregation == Meter.Aggregation.COUNT and field_name:
        raise ValidationError(
            "A count meter counts events; it aggregates no property.",
            code="field_name_not_allowed",
            param="field_name",
        )
    if aggregation != Meter.Aggregation.COUNT and not _FIELD_NAME.match(field_name):
        raise ValidationError(
            f"A {aggregation} meter names the event property it aggregates.",
            code="field_name_required",
            param="field_name",
        )
    meter = Meter(
        code=code,
        name=_clean_text(name, param="name"),
        unit_label=_clean_text(unit_label, param="unit_label", max_length=50),
        aggregation=aggregation,
        field_name=_clean_text(field_name, param="field_name", max_length=64, required=False),
        created_at=clock.now(),
    )
    with transaction.atomic():
        _insert(meter, conflicts=_code_taken("meter", code))
        _record_create(meter, actor=actor)
    return meter


def meter_update(
    *,
    meter: Meter,
    name: str | Unset = UNSET,
    unit_label: str | Unset = UNSET,
    actor: Actor,
) -> Meter:
    changes: dict[str, Any] = {}
    if name is not UNSET:
        changes["name"] = _clean_text(name, param="name")
    if unit_label is not UNSET:
        changes["unit_label"] = _clean_text(unit_label, param="unit_label", max_length=50)
    with transaction.atomic():
        return _apply(_locked(meter), changes, actor=actor)


def meter_archive(*, meter: Meter, actor: Actor) -> Meter:
    return _archive(meter, actor=actor)


def meter_unarchive(*, meter: Meter, actor: Actor) -> Meter:
    return _unarchive(meter, actor=actor)


def plan_meter_create(*, plan: Plan, meter: Meter, pricing: str, actor: Actor) -> PlanMeter:
    """Charge a plan's subscribers for the usage `meter` counts, in arrears at period end."""
    _require_active(plan, param="plan", code="plan_archived")
    _require_active(meter, param="meter", code="meter_archived")
    plan_meter = PlanMeter(
        plan=plan,
        meter=meter,
        pricing=_clean_choice(pricing, PlanMeter.Pricing.values, param="pricing"),
    )
    with transaction.atomic():
        conflict = ConflictError(
            f"Plan {plan.code} already charges for meter {meter.code}.",
            code="plan_meter_exists",
            param="meter",
        )
        _insert(plan_meter, conflicts={"plan_id, meter_id": conflict})
        _record_create(plan_meter, actor=actor)
    return plan_meter


def meter_tiers_validate(
    tiers: Sequence[TierSpec], *, pricing: str, currency: str, param: str = "tiers"
) -> list[TierSpec]:
    """Unit pricing: one tier without limit. Graduated and volume: limits strictly ascending,
    the last tier without limit. Unit amounts may carry 4 decimals; flat amounts are billed as
    they are, so they have the currency's decimals.
    """
    if not tiers:
        raise ValidationError(
            "A metered price needs its tiers.", code="tiers_required", param=param
        )
    if pricing == PlanMeter.Pricing.UNIT and (len(tiers) != 1 or tiers[0].up_to is not None):
        raise ValidationError(
            "Per-unit pricing has exactly one tier, without a limit (`up_to` empty).",
            code="invalid_tiers",
            param=param,
        )
    cleaned: list[TierSpec] = []
    previous: Decimal | None = None
    last = len(tiers) - 1
    for index, tier in enumerate(tiers):
        at = f"{param}[{index}]"
        up_to: Decimal | None = None
        if tier.up_to is not None:
            up_to = _decimal(tier.up_to, param=f"{at}.up_to", code="invalid_tiers")
            if up_to <= 0 or _places(up_to) > DECIMAL_PLACES or up_to.adjusted() >= 15:
                raise ValidationError(
                    "`up_to` is a positive quantity with 4 decimals at most.",
                    code="invalid_tiers",
                    param=f"{at}.up_to",
                )
            if index == last:
                raise ValidationError(
                    "The last tier has no limit (`up_to` empty).",
                    code="invalid_tiers",
                    param=f"{at}.up_to",
                )
            if previous is not None and up_to <= previous:
                raise ValidationError(
                    "Tier limits go strictly up.", code="invalid_tiers", param=f"{at}.up_to"
                )
            previous = up_to
        elif index != last:
            raise ValidationError(
                "Only the last tier is without a limit.",
                code="invalid_tiers",
                param=f"{at}.up_to",
            )
        cleaned.append(
            TierSpec(
                up_to=up_to,
                unit_amount=_clean_money(
                    tier.unit_amount,
                    currency,
                    param=f"{at}.unit_amount",
                    places=_UNIT_PRICE_PLACES,
                ),
                flat_amount=_clean_money(tier.flat_amount, currency, param=f"{at}.flat_amount"),
            )
        )
    return cleaned


def meter_price_clean_input(
    *,
    plan_meter: PlanMeter,
    currency: str,
    price_list: PriceList | None = None,
    effective_from: date | None = None,
) -> MeterPrice:
    """The unsaved metered price version (without its tiers) these inputs make."""
    return MeterPrice(
        plan_meter=plan_meter,
        price_list=_resolve_price_list(price_list, param="price_list"),
        currency=_clean_currency(currency),
        effective_from=_clean_effective_from(effective_from),
        created_at=clock.now(),
    )


def meter_price_create(
    *,
    plan_meter: PlanMeter,
    currency: str,
    tiers: Sequence[TierSpec],
    price_list: PriceList | None = None,
    effective_from: date | None = None,
    actor: Actor,
) -> MeterPrice:
    """A new version of a metered price in one currency (same versioning as `price_create`)."""
    meter_price = meter_price_clean_input(
        plan_meter=plan_meter,
        currency=currency,
        price_list=price_list,
        effective_from=effective_from,
    )
    cleaned = meter_tiers_validate(tiers, pricing=plan_meter.pricing, currency=meter_price.currency)
    with transaction.atomic():
        conflict = _version_exists(
            "metered price",
            meter_price.currency,
            meter_price.price_list,
            meter_price.effective_from,
        )
        _insert(
            meter_price,
            conflicts={"plan_meter_id, price_list_id, currency, effective_from": conflict},
        )
        MeterPriceTier.objects.bulk_create(
            MeterPriceTier(
                price=meter_price,
                up_to=tier.up_to,
                unit_amount=tier.unit_amount,
                flat_amount=tier.flat_amount,
            )
            for tier in cleaned
        )
        _record_create(
            meter_price,
            actor=actor,
            tiers=[
                {
                    "up_to": None if tier.up_to is None else str(tier.up_to),
                    "unit_amount": str(tier.unit_amount),
                    "flat_amount": str(tier.flat_amount),
                }
                for tier in cleaned
            ],
        )
    return meter_price
