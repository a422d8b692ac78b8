"""Metered usage: recording usage events, aggregating them per period, pricing the total.

Usage is billed in arrears: at each period end the lifecycle asks `usage_line_specs` for the
period that just closed, invoices the lines and moves the subscription's
`usage_billed_through` forward under its row lock. Recording refuses events for days before
`usage_billed_through` (`usage_period_closed`), and takes a FOR KEY SHARE lock on the
subscription row before that check, so an event can never slip into a period while it is being
billed: closing a period locks the row FOR UPDATE, which waits for recorders in flight and
makes later ones wait and re-read the moved mark.

Meter properties: a meter's `field_name` names an event property; a dotted name is a path into
nested objects (`usage.tokens` reads `{"usage": {"tokens": 12}}`). Sum and max meters need a
number: a JSON integer or a decimal string ("12.5"), never a JSON float (it may already be
inexact, like money), 0 or more, with 4 decimals at most (the precision of invoice
quantities and tier limits). A unique-count meter needs a string or an integer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Protocol

from django.db import IntegrityError, transaction
from django.db.models import Count, DecimalField, F, Max, Q, QuerySet, Sum
from django.db.models.expressions import Combinable
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import Cast

from billing.services import LineSpec
from catalog.models import Meter, MeterPrice, PlanMeter
from catalog.selectors import meter_price_for
from core import clock
from core.actors import Actor
from core.errors import ConflictError, NotFoundError, ValidationError
from core.money import DECIMAL_PLACES, MAX_DIGITS, parse_decimal, round_money
from core.services import audit_record, audit_snapshot
from customers.models import Customer, Partner
from subscriptions.models import Subscription, UsageEvent

# Clocks drift: an event a few minutes ahead of ours is the caller's clock, not the future.
USAGE_FUTURE_TOLERANCE = timedelta(minutes=5)
EVENT_ID_MAX_LENGTH = UsageEvent._meta.get_field("event_id").max_length or 200
_MAX_WHOLE_DIGITS = MAX_DIGITS - DECIMAL_PLACES
_QUANTITY_PLACES = DECIMAL_PLACES
_UNIT_AMOUNT_QUANTUM = Decimal(1).scaleb(-DECIMAL_PLACES)


# --- recording ----------------------------------------------------------------------------------


def usage_event_record(
    *,
    customer: Customer,
    meter_code: str,
    event_id: str,
    occurred_at: datetime | None = None,
    properties: Mapping[str, Any] | None = None,
    subscription: Subscription | None = None,
    actor: Actor,
) -> tuple[UsageEvent, bool]:
    """Record one usage event; return it and whether it is new.

    Idempotent by the caller's `event_id` (unique per customer): the same event sent again
    returns the stored one (`created` False), even after its period was billed; the same id
    with another meter, time, subscription or properties is a ConflictError
    `usage_event_conflict`. An omitted `occurred_at` means now, and on a resend matches the
    stored time. The unique constraint decides, so concurrent duplicates store one row.

    Without `subscription`, the event goes to the customer's subscription whose plan charges for
    the meter and that is billable at `occurred_at`: started on or before that day, not ended
    (an immediate cancel on D ends at the start of D), not paused then; a base subscription
    before its add-ons, then the latest started. None: ValidationError `no_metered_subscription`.
    Also refused: `usage_in_future` (more than five minutes ahead of the platform clock),
    `usage_period_closed` (before the subscription's `usage_billed_through`, once that day has
    come: during a trial the mark is the first paid day, and trial usage is kept, unbilled), and
    `invalid_usage_value` for a missing or malformed property the meter aggregates.
    """
    event_id = _clean_event_id(event_id)
    cleaned_properties = _clean_properties(properties)
    if occurred_at is not None and (
        not isinstance(occurred_at, datetime) or occurred_at.tzinfo is None
    ):
        raise ValidationError(
            "`occurred_at` is a date and time with a timezone (ISO 8601).",
            code="invalid_occurred_at",
            param="occurred_at",
        )
    meter = _meter_by_code(meter_code)
    if subscription is not None and subscription.customer_id != customer.pk:
        raise ValidationError(
            f"Subscription {subscription.pk} belongs to another customer.",
            code="subscription_customer_mismatch",
            param="subscription",
        )

    with transaction.atomic():
        stored = _stored_event(customer, event_id)
        if stored is not None:
            return _replayed(
                stored,
                meter=meter,
                occurred_at=occurred_at,
                properties=cleaned_properties,
                subscription=subscription,
            ), False

        now = clock.now()
        moment = occurred_at or now
        if moment > now + USAGE_FUTURE_TOLERANCE:
            raise ValidationError(
                "Usage cannot be recorded for the future (more than 5 minutes ahead).",
                code="usage_in_future",
                param="occurred_at",
            )
        _check_property(meter, cleaned_properties)
        target = _metered_subscription(
            customer=customer, meter=meter, moment=moment, subscription=subscription
        )
        billed_through = _usage_billed_through_locked(target)
        # A mark still ahead of today is the first paid day of a trialing (or future) subscription:
        # nothing is billed yet, and usage before it is kept but never billed (a free trial).
        if (
            billed_through is not None
            and billed_through <= now.astimezone(UTC).date()
            and moment < _midnight(billed_through)
        ):
            raise ValidationError(
                f"Usage before {billed_through.isoformat()} has already been billed for "
                f"subscription {target.pk}.",
                code="usage_period_closed",
                param="occurred_at",
            )

        event = UsageEvent(
            customer=customer,
            subscription=target,
            meter=meter,
            event_id=event_id,
            occurred_at=moment,
            properties=cleaned_properties,
            created_at=now,
        )
        try:
            with transaction.atomic():
                event.save(force_insert=True)
        except IntegrityError:
            # A concurrent request stored this event id first (the unique constraint waited for
            # it to commit); answer as if this were the resend.
            stored = _stored_event(customer, event_id)
            if stored is None:
                raise
            return _replayed(
                stored,
                meter=meter,
                occurred_at=occurred_at,
                properties=cleaned_properties,
                subscription=subscription,
            ), False
        audit_record(
            actor=actor,
            action="usage_event.record",
            instance=event,
            after=audit_snapshot(event),
        )
    return event, True


def _clean_event_id(event_id: object) -> str:
    value = event_id.strip() if isinstance(event_id, str) else ""
    if not value or len(value) > EVENT_ID_MAX_LENGTH or "\x00" in value:
        raise ValidationError(
            f"`event_id` is your own id for the event, 1 to {EVENT_ID_MAX_LENGTH} characters.",
            code="invalid_event_id",
            param="event_id",
        )
    return value


def _clean_properties(properties: Mapping[str, Any] | None) -> dict[str, Any]:
    if properties is None:
        return {}
    if not isinstance(properties, Mapping):
        raise ValidationError(
            "`properties` is a JSON object.", code="invalid_properties", param="properties"
        )
    return _json_object(properties, "properties")


def _json_object(value: Mapping[Any, Any], param: str) -> dict[str, Any]:
    result = {}
    for key, item in value.items():
        if not isinstance(key, str) or "\x00" in key:
            raise ValidationError(
                "Property names are strings.", code="invalid_properties", param=param
            )
        result[key] = _json_value(item, f"{param}.{key}")
    return result


def _json_value(value: Any, param: str) -> Any:
    """`value` as stored in JSON: Decimals become decimal strings; floats are refused."""
    if isinstance(value, Mapping):
        return _json_object(value, param)
    if isinstance(value, list | tuple):
        return [_json_value(item, f"{param}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, float):
        raise ValidationError(
            'Send fractional numbers as decimal strings, for example "12.5": a JSON float may '
            "already be inexact.",
            code="invalid_properties",
            param=param,
        )
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValidationError("Numbers must be finite.", code="invalid_properties", param=param)
        return f"{value:f}"
    if isinstance(value, str) and "\x00" in value:
        raise ValidationError(
            "Text cannot contain NUL characters.", code="invalid_properties", param=param
        )
    if value is None or isinstance(value, bool | int | str):
        return value
    raise ValidationError(
        "Property values are JSON values (text, numbers, booleans, null, lists, objects).",
        code="invalid_properties",
        param=param,
    )


def _meter_by_code(meter_code: object) -> Meter:
    code = meter_code.strip().lower() if isinstance(meter_code, str) else ""
    meter = Meter.objects.filter(code=code).first() if code else None
    if meter is None:
        raise ValidationError(
            f"No such meter: {meter_code!r}.", code="meter_not_found", param="meter"
        )
    return meter


def _stored_event(customer: Customer, event_id: str) -> UsageEvent | None:
    return (
        UsageEvent.objects.select_related("meter")
        .filter(customer=customer, event_id=event_id)
        .first()
    )


def _replayed(
    stored: UsageEvent,
    *,
    meter: Meter,
    occurred_at: datetime | None,
    properties: dict[str, Any],
    subscription: Subscription | None,
) -> UsageEvent:
    checks = {
        "meter": stored.meter_id != meter.pk,
        "occurred_at": occurred_at is not None and stored.occurred_at != occurred_at,
        "properties": stored.properties != properties,
        "subscription": subscription is not None and stored.subscription_id != subscription.pk,
    }
    differences = [name for name, differs in checks.items() if differs]
    if differences:
        raise ConflictError(
            f"Event {stored.event_id!r} was already recorded with another "
            f"{' and '.join(differences)}; send new usage under a new event id.",
            code="usage_event_conflict",
            param=differences[0],
        )
    return stored


def _check_property(meter: Meter, properties: dict[str, Any]) -> None:
    if meter.aggregation == Meter.Aggregation.COUNT:
        return
    param = f"properties.{meter.field_name}"
    found, value = _property_at(properties, meter.field_name)
    if meter.aggregation == Meter.Aggregation.UNIQUE_COUNT:
        if not found or isinstance(value, bool) or not isinstance(value, str | int) or value == "":
            raise ValidationError(
                f"Meter {meter.code} counts distinct values of `{meter.field_name}`: send it as "
                "a non-empty string or an integer.",
                code="invalid_usage_value",
                param=param,
            )
        return
    message = (
        f"Meter {meter.code} takes the {meter.aggregation} of `{meter.field_name}`: send a "
        'number of 0 or more with 4 decimals at most, as an integer or a decimal string ("12.5").'
    )
    if not found or isinstance(value, bool) or not isinstance(value, int | str):
        raise ValidationError(message, code="invalid_usage_value", param=param)
    try:
        number = parse_decimal(value, param=param)
    except ValidationError:
        raise ValidationError(message, code="invalid_usage_value", param=param) from None
    exponent = int(number.as_tuple().exponent)
    if (
        number < 0
        or -exponent > _QUANTITY_PLACES
        or (not number.is_zero() and number.adjusted() >= _MAX_WHOLE_DIGITS)
    ):
        raise ValidationError(message, code="invalid_usage_value", param=param)


def _property_at(properties: Mapping[str, Any], field_name: str) -> tuple[bool, Any]:
    value: Any = properties
    for part in field_name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return False, None
        value = value[part]
    return True, value


def _metered_subscriptions(
    *, customer: Customer, meter: Meter, day: date
) -> QuerySet[Subscription]:
    """The customer's subscriptions charging for `meter` that are billable on `day`."""
    paused_then = Q(status=Subscription.Status.PAUSED, paused_on__lte=day) & (
        Q(pause_resumes_on__isnull=True) | Q(pause_resumes_on__gt=day)
    )
    return (
        Subscription.objects.filter(customer=customer, plan__meters__meter=meter, start_on__lte=day)
        .filter(Q(ended_on__isnull=True) | Q(ended_on__gt=day))
        .exclude(paused_then)
        .order_by(
            # A base subscription before its add-ons, then the most recently started.
            F("parent_id").asc(nulls_first=True),
            "-start_on",
            "-id",
        )
    )


def _metered_subscription(
    *,
    customer: Customer,
    meter: Meter,
    moment: datetime,
    subscription: Subscription | None,
) -> Subscription:
    candidates = _metered_subscriptions(
        customer=customer, meter=meter, day=moment.astimezone(UTC).date()
    )
    if subscription is not None:
        candidates = candidates.filter(pk=subscription.pk)
    found = candidates.first()
    if found is None:
        when = moment.isoformat()
        if subscription is not None:
            raise ValidationError(
                f"Subscription {subscription.pk} does not charge for meter {meter.code} or is "
                f"not billable at {when}.",
                code="no_metered_subscription",
                param="subscription",
            )
        raise ValidationError(
            f"Customer {customer.pk} has no subscription that charges for meter {meter.code} "
            f"and is billable at {when}.",
            code="no_metered_subscription",
            param="meter",
        )
    return found


def _usage_billed_through_locked(subscription: Subscription) -> date | None:
    """Re-read `usage_billed_through` under a FOR KEY SHARE lock on the subscription row.

    The lock is compatible with other recorders (they do not queue behind each other) but not
    with the lifecycle's FOR UPDATE while it closes a period, so the mark read here cannot move
    before this transaction commits its event.
    """
    locked = list(
        Subscription.objects.raw(
            "SELECT id, usage_billed_through FROM subscriptions_subscription "
            "WHERE id = %s FOR KEY SHARE",
            [subscription.pk],
        )
    )
    return locked[0].usage_billed_through if locked else None


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


# --- reads --------------------------------------------------------------------------------------


def usage_event_list(
    *,
    partner: Partner | None,
    customer_id: int | None = None,
    customer_external_id: str | None = None,
    meter_code: str | None = None,
    subscription_id: int | None = None,
    occurred_after: datetime | None = None,
    occurred_before: datetime | None = None,
) -> QuerySet[UsageEvent]:
    """Usage events visible to `partner` (all for None), narrowed by every filter given.

    `occurred_after` is inclusive and `occurred_before` exclusive, like the billing periods.
    """
    events = UsageEvent.objects.select_related("customer", "meter")
    if partner is not None:
        events = events.filter(customer__partner=partner)
    if customer_id is not None:
        events = events.filter(customer_id=customer_id)
    if customer_external_id is not None:
        events = events.filter(customer__external_id=customer_external_id)
    if meter_code is not None:
        events = events.filter(meter__code=meter_code.strip().lower())
    if subscription_id is not None:
        events = events.filter(subscription_id=subscription_id)
    if occurred_after is not None:
        events = events.filter(occurred_at__gte=occurred_after)
    if occurred_before is not None:
        events = events.filter(occurred_at__lt=occurred_before)
    return events


def usage_subscription_get(*, pk: int | str, partner: Partner | None) -> Subscription:
    """A subscription the caller may see (a partner: its customers' only), or a 404."""
    subscriptions = Subscription.objects.select_related("customer", "plan")
    if partner is not None:
        subscriptions = subscriptions.filter(customer__partner=partner)
    try:
        return subscriptions.get(pk=int(pk))
    except (Subscription.DoesNotExist, ValueError, TypeError):
        raise NotFoundError(
            f"No such subscription: {pk}.", code="subscription_not_found", param="subscription"
        ) from None


# --- aggregation and pricing --------------------------------------------------------------------


def usage_aggregate(
    *, subscription: Subscription, meter: Meter, period_start: date, period_end: date
) -> Decimal:
    """The meter's total over the events of [period_start 00:00 UTC, period_end 00:00 UTC).

    Computed by the database: sum or max of the property, count of its distinct values (compared
    as text), or count of events. No events: 0.
    """
    _check_period(period_start, period_end)
    events = UsageEvent.objects.filter(
        subscription=subscription,
        meter=meter,
        occurred_at__gte=_midnight(period_start),
        occurred_at__lt=_midnight(period_end),
    )
    aggregation = meter.aggregation
    if aggregation == Meter.Aggregation.COUNT:
        total = events.aggregate(total=Count("id"))["total"]
    elif aggregation == Meter.Aggregation.UNIQUE_COUNT:
        total = events.aggregate(total=Count(_property_text(meter.field_name), distinct=True))[
            "total"
        ]
    else:
        number = Cast(
            _property_text(meter.field_name),
            output_field=DecimalField(max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES),
        )
        function = Sum if aggregation == Meter.Aggregation.SUM else Max
        total = events.aggregate(total=function(number))["total"]
    return Decimal(total or 0)


def _property_text(field_name: str) -> Combinable:
    """SQL for the event property `field_name` as text (a dotted name walks nested objects)."""
    *parents, last = field_name.split(".")
    expression: Any = "properties"
    for part in parents:
        expression = KeyTransform(part, expression)
    return KeyTextTransform(last, expression)


def _check_period(period_start: date, period_end: date) -> None:
    if period_start >= period_end:
        raise ValidationError(
            "A usage period ends after it starts.", code="invalid_period", param="period_end"
        )


class TierLike(Protocol):
    @property
    def up_to(self) -> Decimal | None: ...
    @property
    def unit_amount(self) -> Decimal: ...
    @property
    def flat_amount(self) -> Decimal: ...


def usage_amount(*, quantity: Decimal, pricing: str, tiers: Sequence[TierLike]) -> Decimal:
    """The UNROUNDED price of `quantity` units (billing rounds once, at the invoice line).

    Tiers: `up_to` is inclusive, None means no limit; each tier has a unit amount and a flat
    amount. With tiers up to 100 at 0.10, up to 1000 at 0.08, and above at 0.05:

    - unit (one tier): quantity x unit amount (+ its flat amount);
      1500 units at 0.10 -> 150.00.
    - graduated: each tier prices the units that fall in it, and adds its flat amount once it is
      reached; 1500 units -> 100 x 0.10 + 900 x 0.08 + 500 x 0.05 = 10 + 72 + 25 = 107.00;
      50 units -> 5.00.
    - volume: every unit at the price of the tier the total falls in, plus that tier's flat
      amount; 1500 units -> 1500 x 0.05 = 75.00; 100 units -> 10.00 (limits are inclusive);
      101 units -> 8.08.

    No usage costs nothing: 0 units -> 0 in every model (no flat fee of an unreached first
    tier, nor a volume flat fee, without usage).
    """
    if quantity <= 0:
        return Decimal(0)
    ordered = sorted(tiers, key=lambda t: (t.up_to is None, t.up_to or Decimal(0)))
    if not ordered:
        raise ValidationError(
            "A metered price needs its tiers.", code="tiers_required", param="tiers"
        )
    if pricing == PlanMeter.Pricing.UNIT:
        tier = ordered[0]
        return quantity * tier.unit_amount + tier.flat_amount
    if pricing == PlanMeter.Pricing.GRADUATED:
        amount = Decimal(0)
        floor = Decimal(0)
        for tier in ordered:
            ceiling = quantity if tier.up_to is None else min(quantity, tier.up_to)
            units = ceiling - floor
            if units <= 0:
                break
            amount += units * tier.unit_amount + tier.flat_amount
            floor = ceiling
            if floor >= quantity:
                break
        return amount
    if pricing == PlanMeter.Pricing.VOLUME:
        for tier in ordered:
            if tier.up_to is None or quantity <= tier.up_to:
                return quantity * tier.unit_amount + tier.flat_amount
        # Only tiers with a limit, all below the quantity: the catalog refuses such prices.
        raise ValidationError(
            "The last tier of a volume price has no limit.", code="invalid_tiers", param="tiers"
        )
    raise ValidationError(f"Unknown pricing {pricing!r}.", code="invalid_pricing", param="pricing")


@dataclass(frozen=True)
class MeterUsage:
    """One metered charge of a subscription over a period."""

    plan_meter: PlanMeter
    currency: str
    quantity: Decimal
    price: MeterPrice | None  # None: no price version in the subscription's currency
    amount: Decimal | None  # unrounded; None without a price
    amount_rounded: Decimal | None

    @property
    def meter(self) -> Meter:
        return self.plan_meter.meter


@dataclass(frozen=True)
class UsageSummary:
    subscription: Subscription
    currency: str
    period_start: date
    period_end: date
    meters: list[MeterUsage]

    @property
    def total(self) -> Decimal:
        """The sum of the rounded amounts: what the usage lines would add to an invoice now."""
        return sum(
            (m.amount_rounded for m in self.meters if m.amount_rounded is not None), Decimal(0)
        )


def _meter_price(
    *, subscription: Subscription, plan_meter: PlanMeter, period_end: date
) -> MeterPrice | None:
    """The metered price version for the subscription (grandfathered on its pricing date).

    A metered charge priced only after the subscriber signed up has no version on that date;
    it is billed at the version in effect on the last day of the billed period.
    """
    for on in (subscription.pricing_date, period_end - timedelta(days=1)):
        price = meter_price_for(
            plan_meter=plan_meter,
            currency=subscription.currency,
            price_list=subscription.price_list,
            on=on,
        )
        if price is not None:
            return price
    return None


def _meter_usages(
    *, subscription: Subscription, period_start: date, period_end: date
) -> list[MeterUsage]:
    _check_period(period_start, period_end)
    usages = []
    plan_meters = PlanMeter.objects.filter(plan_id=subscription.plan_id).select_related("meter")
    for plan_meter in plan_meters.order_by("id"):
        quantity = usage_aggregate(
            subscription=subscription,
            meter=plan_meter.meter,
            period_start=period_start,
            period_end=period_end,
        )
        price = _meter_price(
            subscription=subscription, plan_meter=plan_meter, period_end=period_end
        )
        amount = (
            None
            if price is None
            else usage_amount(
                quantity=quantity, pricing=plan_meter.pricing, tiers=list(price.tiers.all())
            )
        )
        usages.append(
            MeterUsage(
                plan_meter=plan_meter,
                currency=subscription.currency,
                quantity=quantity,
                price=price,
                amount=amount,
                amount_rounded=None
                if amount is None
                else round_money(amount, subscription.currency),
            )
        )
    return usages


def usage_line_specs(
    *, subscription: Subscription, period_start: date, period_end: date
) -> list[LineSpec]:
    """The usage lines of `subscription` for [period_start, period_end), one per metered charge.

    Quantity is the meter's total over the period; `amount` the unrounded `usage_amount` (billing
    rounds it once); `unit_amount` the effective price per unit, for display. A charge without
    usage and without a price in the subscription's currency is left out; usage without a
    price is a ValidationError `meter_price_not_available` (billing it at nothing would give it
    away). The caller holds the subscription's row lock and moves `usage_billed_through`.
    """
    specs = []
    for usage in _meter_usages(
        subscription=subscription, period_start=period_start, period_end=period_end
    ):
        meter = usage.meter
        if usage.price is None or usage.amount is None:
            if usage.quantity == 0:
                continue
            raise ValidationError(
                f"Meter {meter.code} of plan {subscription.plan.code} has no price in "
                f"{subscription.currency}; add one before billing its usage.",
                code="meter_price_not_available",
                param="meter",
            )
        specs.append(
            LineSpec(
                kind="usage",
                description=_line_description(meter, usage.quantity),
                unit_amount=_display_unit_amount(usage, usage.price),
                quantity=usage.quantity,
                period_start=period_start,
                period_end=period_end,
                amount=usage.amount,
                subscription_id=subscription.pk,
                plan_id=subscription.plan_id,
                meter_id=meter.pk,
                coupon_id=None,
            )
        )
    return specs


def _line_description(meter: Meter, quantity: Decimal) -> str:
    return f"{meter.name} ({_plain(quantity)} {meter.unit_label})"


def _plain(number: Decimal) -> str:
    """1500.0000 -> "1500", 2.5000 -> "2.5" (fixed-point, never "1.5E+3")."""
    text = f"{number:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _display_unit_amount(usage: MeterUsage, price: MeterPrice) -> Decimal:
    tiers: list[Any] = sorted(
        price.tiers.all(), key=lambda t: (t.up_to is None, t.up_to or Decimal(0))
    )
    plain_unit = usage.plan_meter.pricing == PlanMeter.Pricing.UNIT and tiers[0].flat_amount == 0
    if usage.quantity == 0 or usage.amount is None or plain_unit:
        return Decimal(tiers[0].unit_amount)
    return (usage.amount / usage.quantity).quantize(_UNIT_AMOUNT_QUANTUM, rounding=ROUND_HALF_UP)


def usage_summary(
    *,
    subscription: Subscription,
    period_start: date | None = None,
    period_end: date | None = None,
) -> UsageSummary:
    """Usage so far per metered charge, with its price now (unrounded and rounded).

    The period defaults to the subscription's current period; give both ends or neither.
    """
    if (period_start is None) != (period_end is None):
        missing = "period_end" if period_end is None else "period_start"
        raise ValidationError(
            "Give both `period_start` and `period_end`, or neither for the current period.",
            code="invalid_period",
            param=missing,
        )
    if period_start is None or period_end is None:
        period_start = subscription.current_period_start
        period_end = subscription.current_period_end
        if period_start is None or period_end is None:
            raise ValidationError(
                f"Subscription {subscription.pk} has no current period; give `period_start` "
                "and `period_end`.",
                code="no_current_period",
                param="period_start",
            )
    return UsageSummary(
        subscription=subscription,
        currency=subscription.currency,
        period_start=period_start,
        period_end=period_end,
        meters=_meter_usages(
            subscription=subscription, period_start=period_start, period_end=period_end
        ),
    )
