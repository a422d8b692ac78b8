"""Reads of the catalog that other apps and the doors use. Pure reads: nothing here writes.

Price lookups follow one rule: the version in effect on a date is the one with the latest
`effective_from` on or before that date; a price list without such a version falls back to the
default price list.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from django.db.models import Model, QuerySet

from catalog.models import (
    Bundle,
    BundlePrice,
    Coupon,
    MeterPrice,
    Plan,
    PlanMeter,
    PlanPhase,
    Price,
    PriceList,
    Product,
    PromotionCode,
    TaxRate,
)
from core import clock
from core.errors import ValidationError
from core.money import normalize_currency


def plans_available(*, product: Product | None = None) -> QuerySet[Plan]:
    """Plans that can be chosen for something new: neither they nor their product archived."""
    plans = Plan.objects.filter(archived_at__isnull=True, product__archived_at__isnull=True)
    if product is not None:
        plans = plans.filter(product=product)
    return plans.select_related("product").order_by("product_id", "tier_rank", "id")


def plan_final_phase(*, plan: Plan) -> PlanPhase | None:
    """The evergreen or fixed-term phase a plan ends with (None only for a plan without phases)."""
    return plan.phases.order_by("-sequence").first()


def price_list_default() -> PriceList | None:
    return PriceList.objects.filter(kind=PriceList.Kind.DEFAULT).first()


def price_list_for(
    *,
    price_list_id: int | None = None,
    partner_price_list_id: int | None = None,
    segments: Sequence[str] = (),
    country: str = "",
) -> PriceList | None:
    """The price list a buyer gets, from plain values (the catalog knows nothing of customers).

    Order: an explicitly assigned list, the partner's list, the first of the buyer's segments
    that has a list, a list for the buyer's country, then the default list. Archived lists are
    skipped. None only when there is no default list at all.
    """
    active = PriceList.objects.filter(archived_at__isnull=True)
    for list_id in (price_list_id, partner_price_list_id):
        if list_id is not None:
            found = active.filter(pk=list_id).first()
            if found is not None:
                return found
    if segments:
        by_segment = {
            price_list.segment: price_list
            for price_list in active.filter(
                kind=PriceList.Kind.SEGMENT, segment__in=list(segments)
            ).order_by("-id")
        }
        for segment in segments:
            if segment in by_segment:
                return by_segment[segment]
    if country:
        geography = (
            active.filter(kind=PriceList.Kind.GEOGRAPHY, countries__contains=[country.upper()])
            .order_by("id")
            .first()
        )
        if geography is not None:
            return geography
    return price_list_default()


def _version_on(
    versions: QuerySet[Any], *, price_list: PriceList | None, on: date | None
) -> Any | None:
    day = on or clock.today()
    in_effect = versions.filter(effective_from__lte=day).order_by("-effective_from")
    if price_list is not None and price_list.kind != PriceList.Kind.DEFAULT:
        found = in_effect.filter(price_list=price_list).first()
        if found is not None:
            return found
    return in_effect.filter(price_list__kind=PriceList.Kind.DEFAULT).first()


def price_for(
    *,
    phase: PlanPhase,
    currency: str,
    price_list: PriceList | None = None,
    on: date | None = None,
) -> Price | None:
    """The price version of `phase` in `currency` in effect on `on` (today by default).

    Taken from `price_list` when it has one in effect, otherwise from the default list.
    """
    versions = Price.objects.filter(phase=phase, currency=normalize_currency(currency))
    found: Price | None = _version_on(
        versions.select_related("price_list"), price_list=price_list, on=on
    )
    return found


def plan_prices(
    *,
    plan: Plan,
    currency: str,
    price_list: PriceList | None = None,
    on: date | None = None,
) -> dict[int, Price | None]:
    """Each phase's price in effect (keyed by phase sequence), for showing a plan to a buyer."""
    return {
        phase.sequence: price_for(phase=phase, currency=currency, price_list=price_list, on=on)
        for phase in plan.phases.all()
    }


def bundle_price_for(
    *,
    bundle: Bundle,
    currency: str,
    price_list: PriceList | None = None,
    on: date | None = None,
) -> BundlePrice | None:
    versions = BundlePrice.objects.filter(bundle=bundle, currency=normalize_currency(currency))
    found: BundlePrice | None = _version_on(versions, price_list=price_list, on=on)
    return found


def meter_price_for(
    *,
    plan_meter: PlanMeter,
    currency: str,
    price_list: PriceList | None = None,
    on: date | None = None,
) -> MeterPrice | None:
    """The metered price version in effect, its tiers prefetched in ascending `up_to` order."""
    versions = MeterPrice.objects.filter(
        plan_meter=plan_meter, currency=normalize_currency(currency)
    ).prefetch_related("tiers")
    found: MeterPrice | None = _version_on(versions, price_list=price_list, on=on)
    return found


def tax_rate_for(*, country: str, region: str = "") -> TaxRate | None:
    """The active tax rate for a place: the region's own rate wins over the country-wide one."""
    country = (country or "").strip().upper()
    region = (region or "").strip().upper()
    if region.startswith(f"{country}-"):
        region = region[len(country) + 1 :]
    rates = {
        rate.region: rate
        for rate in TaxRate.objects.filter(active=True, country=country, region__in={region, ""})
    }
    return rates.get(region) or rates.get("")


def promotion_code_lookup(*, code: str) -> PromotionCode | None:
    """The promotion code a customer typed (case does not matter), with its coupon."""
    return (
        PromotionCode.objects.select_related("coupon")
        .filter(code=(code or "").strip().upper())
        .first()
    )


def coupon_redeemable(
    *,
    coupon: Coupon | None = None,
    promotion_code: PromotionCode | None = None,
    plan: Plan | None = None,
    currency: str | None = None,
    first_time_customer: bool = True,
    at: datetime | None = None,
) -> Coupon:
    """Check that a coupon (or a promotion code's coupon) can be redeemed now; return it.

    Raises ValidationError with code `coupon_expired` (archived, inactive, past `redeem_by` or
    the code's expiry), `coupon_exhausted` (no redemptions left) or `coupon_not_applicable`
    (another plan, a currency without an amount, a first-time-only code for a returning buyer).
    """
    if promotion_code is not None:
        coupon = promotion_code.coupon
    if coupon is None:
        raise TypeError("coupon_redeemable needs a coupon or a promotion code")
    moment = at or clock.now()
    param = "promotion_code" if promotion_code is not None else "coupon"

    if coupon.archived_at is not None or (promotion_code is not None and not promotion_code.active):
        raise _refusal("coupon_expired", "This coupon is no longer available.", param)
    if coupon.redeem_by is not None and moment > coupon.redeem_by:
        raise _refusal("coupon_expired", "This coupon has expired.", param)
    if (
        promotion_code is not None
        and promotion_code.expires_at is not None
        and moment >= promotion_code.expires_at
    ):
        raise _refusal("coupon_expired", "This promotion code has expired.", param)
    for limited in (coupon, promotion_code):
        if _exhausted(limited):
            raise _refusal(
                "coupon_exhausted", "This coupon has been redeemed the maximum times.", param
            )
    if plan is not None:
        restricted_to = set(coupon.plans.values_list("id", flat=True))
        if restricted_to and plan.pk not in restricted_to:
            raise _refusal(
                "coupon_not_applicable", "This coupon is not valid for this plan.", param
            )
    if (
        currency is not None
        and coupon.discount_type == Coupon.DiscountType.FIXED
        and not coupon.amounts.filter(currency=normalize_currency(currency)).exists()
    ):
        raise _refusal("coupon_not_applicable", f"This coupon has no amount in {currency}.", param)
    if promotion_code is not None and promotion_code.first_time_only and not first_time_customer:
        raise _refusal(
            "coupon_not_applicable", "This promotion code is for first-time customers.", param
        )
    return coupon


def _exhausted(limited: Model | None) -> bool:
    if limited is None:
        return False
    maximum = getattr(limited, "max_redemptions", None)
    return maximum is not None and getattr(limited, "times_redeemed", 0) >= maximum


def _refusal(code: str, message: str, param: str) -> ValidationError:
    return ValidationError(message, code=code, param=param)
