"""Creating, cancelling, pausing, resuming, reactivating and renewing subscriptions.

Every service here is one transaction (it joins the caller's when there is one) that locks the
rows it changes, re-reads their state under the lock, refuses bad input before writing
anything, and leaves an event on the timeline and an entry in the audit log.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction

from billing.models import Invoice
from billing.services import LineSpec
from catalog.models import Bundle, Coupon, Plan, PlanPhase, PriceList, PromotionCode
from catalog.selectors import (
    bundle_price_for,
    coupon_redeemable,
    price_for,
    price_list_for,
    promotion_code_lookup,
)
from catalog.services import coupon_redeem
from core import clock
from core.actors import Actor
from core.errors import ConflictError, ValidationError
from core.money import DECIMAL_PLACES, normalize_currency
from core.periods import add_interval
from core.services import audit_record, audit_snapshot
from customers.models import Customer
from customers.services import customer_update
from subscriptions.models import (
    ScheduledChange,
    Subscription,
    SubscriptionDiscount,
    SubscriptionEvent,
    SubscriptionGroup,
)
from subscriptions.services import state, transitions
from subscriptions.services.schedule import allocate, calendar_anchor
from subscriptions.services.state import LifecycleResult

Kind = SubscriptionEvent.Kind
Status = Subscription.Status
Reason = Invoice.BillingReason


class Policy:
    END_OF_TERM = "end_of_term"
    IMMEDIATE = "immediate"
    ALL = (END_OF_TERM, IMMEDIATE)


class PauseWhen:
    NOW = "now"
    PERIOD_END = "period_end"
    ALL = (NOW, PERIOD_END)


@dataclass(frozen=True)
class BundleResult:
    group: SubscriptionGroup
    subscriptions: list[Subscription]
    invoice: Invoice | None = None


# --- input checks (no writes) ---------------------------------------------------------------


def clean_policy(policy: str | None, *, default: str) -> str:
    value = policy or default
    if value not in Policy.ALL:
        raise ValidationError(
            "policy is `immediate` or `end_of_term`.", code="invalid_policy", param="policy"
        )
    return value


def clean_quantity(quantity: object, plan: Plan, *, param: str = "quantity") -> int:
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise ValidationError("quantity is a whole number.", code="invalid_quantity", param=param)
    if quantity < max(plan.min_quantity, 1) or (
        plan.max_quantity is not None and quantity > plan.max_quantity
    ):
        upper = f" and at most {plan.max_quantity}" if plan.max_quantity is not None else ""
        raise ValidationError(
            f"{plan.code} is sold in quantities of at least {max(plan.min_quantity, 1)}{upper}.",
            code="invalid_quantity",
            param=param,
        )
    return quantity


def require_plan_available(plan: Plan, *, param: str = "plan") -> None:
    if plan.archived_at is not None or plan.product.archived_at is not None:
        raise ValidationError(
            f"Plan {plan.code} is archived: it cannot be chosen any more.",
            code="plan_archived",
            param=param,
        )


def _clean_billing_day(billing_day: int | None, plan: Plan) -> int | None:
    if billing_day is None:
        return None
    if (
        isinstance(billing_day, bool)
        or not isinstance(billing_day, int)
        or not 1 <= billing_day <= 31
    ):
        raise ValidationError(
            "billing_day is a day of the month from 1 to 31.",
            code="invalid_billing_day",
            param="billing_day",
        )
    if plan.interval.months() is None:
        raise ValidationError(
            "Calendar billing days apply to monthly, quarterly and yearly plans only.",
            code="invalid_billing_day",
            param="billing_day",
        )
    return billing_day


def _resolve_price_list(customer: Customer, price_list: PriceList | str | None) -> PriceList:
    found: PriceList | None
    if isinstance(price_list, str):
        found = PriceList.objects.filter(code=price_list.strip()).first()
    elif price_list is not None:
        found = price_list
    else:
        partner = customer.partner
        found = price_list_for(
            price_list_id=customer.price_list_id,
            partner_price_list_id=partner.price_list_id if partner is not None else None,
            segments=customer.segments,
            country=customer.country,
        )
    if found is None or found.archived_at is not None:
        raise ValidationError(
            f"No such price list: {price_list!r}." if price_list else "No price list applies.",
            code="price_list_not_found",
            param="price_list",
        )
    return found


def _resolve_coupon(
    coupon: Coupon | str | None, promotion_code: PromotionCode | str | None
) -> tuple[Coupon | None, PromotionCode | None]:
    if coupon is not None and promotion_code is not None:
        raise ValidationError(
            "Give a coupon or a promotion code, not both.",
            code="coupon_not_applicable",
            param="promotion_code",
        )
    if isinstance(promotion_code, str):
        found_code = promotion_code_lookup(code=promotion_code)
        if found_code is None:
            raise ValidationError(
                f"No such promotion code: {promotion_code!r}.",
                code="promotion_code_not_found",
                param="promotion_code",
            )
        return found_code.coupon, found_code
    if promotion_code is not None:
        return promotion_code.coupon, promotion_code
    if isinstance(coupon, str):
        found = Coupon.objects.filter(code=coupon.strip()).first()
        if found is None:
            raise ValidationError(
                f"No such coupon: {coupon!r}.", code="coupon_not_found", param="coupon"
            )
        return found, None
    return coupon, None


def _lock_customer(customer: Customer) -> Customer:
    return (
        Customer.objects.select_for_update(of=("self",))
        .select_related("partner")
        .get(pk=customer.pk)
    )


def _currency_for(customer: Customer, currency: str | None) -> str:
    if customer.currency:
        if currency and normalize_currency(currency) != customer.currency:
            raise ValidationError(
                f"This customer is billed in {customer.currency}, not {currency}.",
                code="currency_mismatch",
                param="currency",
            )
        return customer.currency
    if not currency:
        raise ValidationError(
            "This customer has no billing currency yet: give one.",
            code="currency_required",
            param="currency",
        )
    return normalize_currency(currency)


# --- create ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Start:
    """When a new subscription starts, when it starts paying and how it is anchored."""

    start_on: date
    paid_start: date
    anchor: date
    billing_day: int | None
    status: str


def _start_dates(
    *,
    plan: Plan,
    phases: Sequence[PlanPhase],
    start_on: date,
    billing_day: int | None,
    parent: Subscription | None,
    today: date,
) -> _Start:
    if parent is not None:
        # An add-on bills with its base: from the base's first paid day, on the base's anchor.
        if parent.status in (Status.FUTURE, Status.TRIALING):
            start_on = max(start_on, parent.billed_through or start_on)
        assert parent.billing_anchor is not None  # noqa: S101 - guaranteed by the state rules
        status = Status.FUTURE if start_on > today else Status.ACTIVE
        return _Start(start_on, start_on, parent.billing_anchor, parent.billing_day, status)
    first = phases[0]
    trial = first.kind == PlanPhase.Kind.TRIAL
    paid_start = add_interval(start_on, first.duration) if trial and first.duration else start_on
    anchor = calendar_anchor(paid_start, billing_day) if billing_day else paid_start
    if start_on > today:
        status = Status.FUTURE
    elif trial:
        status = Status.TRIALING
    else:
        status = Status.ACTIVE
    return _Start(start_on, paid_start, anchor, billing_day, status)


def _create(
    *,
    customer: Customer,
    plan: Plan,
    actor: Actor,
    quantity: int,
    trial: bool,
    start_on: date,
    currency: str,
    price_list: PriceList,
    billing_day: int | None,
    coupon: Coupon | None = None,
    promotion_code: PromotionCode | None = None,
    parent: Subscription | None = None,
    group: SubscriptionGroup | None = None,
    unit_amount: Decimal | None = None,
    previous: Subscription | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> tuple[Subscription, list[LineSpec]]:
    """Insert one subscription (the customer row is locked by the caller); its first lines."""
    today = clock.today()
    phases = [
        p
        for p in plan.phases.order_by("sequence")
        if (trial and parent is None) or p.kind != PlanPhase.Kind.TRIAL
    ]
    for phase in phases:
        if phase.kind != PlanPhase.Kind.TRIAL and (
            price_for(phase=phase, currency=currency, price_list=price_list, on=start_on) is None
        ):
            raise ValidationError(
                f"Plan {plan.code} has no price in {currency}.",
                code="currency_mismatch" if customer.currency else "price_not_available",
                param="currency" if not customer.currency else "plan",
            )
    start = _start_dates(
        plan=plan,
        phases=phases,
        start_on=start_on,
        billing_day=billing_day,
        parent=parent,
        today=today,
    )
    first = phases[0]
    now = clock.now()
    subscription = Subscription(
        customer=customer,
        plan=plan,
        phase=first,
        price_list=price_list,
        currency=currency,
        pricing_date=start.start_on,
        quantity=quantity,
        status=start.status,
        start_on=start.start_on,
        phase_started_on=start.start_on,
        phase_ends_on=add_interval(start.start_on, first.duration) if first.duration else None,
        billing_anchor=start.anchor,
        billing_day=start.billing_day,
        billed_through=start.paid_start,
        usage_billed_through=start.paid_start,
        parent=parent,
        group=group,
        previous=previous,
        unit_amount=unit_amount,
        metadata=dict(metadata or {}),
        created_at=now,
        updated_at=now,
    )
    subscription.save()
    state.record_event(
        subscription,
        Kind.CREATED,
        actor=actor,
        effective_on=start.start_on,
        data={
            "plan": plan.code,
            "quantity": quantity,
            "status": start.status,
            "anchor": start.anchor,
            "currency": currency,
            "price_list": price_list.code,
            "parent": parent.pk if parent is not None else None,
        },
    )
    if coupon is not None:
        _apply_discount(
            subscription, coupon, promotion_code, paid_start=start.paid_start, actor=actor
        )
    lines: list[LineSpec] = []
    if start.status == Status.ACTIVE:
        lines = transitions.bill_period(subscription, start.paid_start)
    state.save(subscription, actor=actor, action="subscription.create", before=None)
    return subscription, lines


def _apply_discount(
    subscription: Subscription,
    coupon: Coupon,
    promotion_code: PromotionCode | None,
    *,
    paid_start: date,
    actor: Actor,
) -> None:
    redeemed = coupon_redeem(
        coupon=coupon if promotion_code is None else None,
        promotion_code=promotion_code,
        plan=subscription.plan,
        currency=subscription.currency,
        first_time_customer=not Subscription.objects.filter(customer=subscription.customer)
        .exclude(pk=subscription.pk)
        .exists(),
        actor=actor,
    )
    cadence = state.cadence(subscription)
    first = cadence.index(paid_start)
    ends_on: date | None = None
    if redeemed.duration == Coupon.Duration.ONCE:
        ends_on = cadence.start(first + 1)
    elif redeemed.duration == Coupon.Duration.REPEATING:
        ends_on = cadence.start(first + (redeemed.duration_cycles or 1))
    SubscriptionDiscount.objects.create(
        subscription=subscription,
        coupon=redeemed,
        promotion_code=promotion_code,
        starts_on=paid_start,
        ends_on=ends_on,
        created_at=clock.now(),
    )
    state.record_event(
        subscription,
        Kind.DISCOUNT_APPLIED,
        actor=actor,
        effective_on=paid_start,
        data={
            "coupon": redeemed.code,
            "promotion_code": promotion_code.code if promotion_code is not None else None,
            "ends_on": ends_on,
        },
    )


def _clean_start_on(start_on: date | None) -> date:
    today = clock.today()
    if start_on is None:
        return today
    if start_on < today:
        raise ValidationError(
            "A subscription starts today or later.", code="invalid_start_on", param="start_on"
        )
    return start_on


def _set_customer_currency(customer: Customer, currency: str, actor: Actor) -> None:
    if not customer.currency:
        customer_update(customer=customer, currency=currency, actor=actor)
        customer.currency = currency


def subscription_create(
    *,
    customer: Customer,
    plan: Plan,
    actor: Actor,
    quantity: int = 1,
    trial: bool = True,
    start_on: date | None = None,
    currency: str | None = None,
    coupon: Coupon | str | None = None,
    promotion_code: PromotionCode | str | None = None,
    billing_day: int | None = None,
    price_list: PriceList | str | None = None,
    parent: Subscription | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> LifecycleResult:
    """Subscribe `customer` to `plan`, now or from `start_on`, with its trial unless told not.

    Starting now without a trial bills the first period at once (with the one-time fee);
    otherwise the first invoice comes when the paid phase starts. An add-on (`parent`) bills
    on its base's anchor, with a prorated first slice to the base's period end.
    """
    require_plan_available(plan)
    quantity = clean_quantity(quantity, plan)
    if metadata is not None and not isinstance(metadata, Mapping):
        raise ValidationError(
            "metadata is a JSON object.", code="invalid_metadata", param="metadata"
        )
    start = _clean_start_on(start_on)
    day = _clean_billing_day(billing_day, plan)
    the_coupon, the_code = _resolve_coupon(coupon, promotion_code)
    with transaction.atomic():
        locked_customer = _lock_customer(customer)
        if parent is not None:
            base = state.lock(parent.pk)
            _check_addon(base, plan, locked_customer)
            chosen_currency = _currency_for(locked_customer, currency or base.currency)
            chosen_list = (
                base.price_list
                if price_list is None
                else _resolve_price_list(locked_customer, price_list)
            )
        else:
            base = None
            chosen_currency = _currency_for(locked_customer, currency)
            chosen_list = _resolve_price_list(locked_customer, price_list)
            if day is None and plan.interval.months() is not None:
                day = plan.billing_day or locked_customer.billing_day
        if the_coupon is not None:
            coupon_redeemable(
                coupon=the_coupon,
                promotion_code=the_code,
                plan=plan,
                currency=chosen_currency,
            )
        subscription, lines = _create(
            customer=locked_customer,
            plan=plan,
            actor=actor,
            quantity=quantity,
            trial=trial,
            start_on=start,
            currency=chosen_currency,
            price_list=chosen_list,
            billing_day=day,
            coupon=the_coupon,
            promotion_code=the_code,
            parent=base,
            metadata=metadata,
        )
        _set_customer_currency(locked_customer, chosen_currency, actor)
        invoice = state.issue_invoice(
            customer=locked_customer,
            currency=chosen_currency,
            billing_reason=Reason.SUBSCRIPTION_CREATE,
            lines=lines,
            actor=actor,
        )
    return LifecycleResult(subscription, invoice)


def _check_addon(base: Subscription, plan: Plan, customer: Customer) -> None:
    if base.customer_id != customer.pk:
        raise ValidationError(
            "An add-on belongs to a subscription of the same customer.",
            code="invalid_parent",
            param="parent",
        )
    state.require_not_ended(base)
    if base.parent_id is not None:
        raise ValidationError(
            "An add-on attaches to a base subscription, not to another add-on.",
            code="invalid_parent",
            param="parent",
        )
    if base.status == Status.PAUSED:
        raise ConflictError(
            "The base subscription is paused.", code="subscription_paused", param="parent"
        )
    if not state.is_addon_of(base.plan, plan):
        raise ValidationError(
            f"{plan.code} is not an add-on of {base.plan.code}.",
            code="addon_not_allowed",
            param="plan",
        )


def subscription_create_bundle(
    *,
    customer: Customer,
    bundle: Bundle,
    actor: Actor,
    trial: bool = True,
    start_on: date | None = None,
    currency: str | None = None,
    billing_day: int | None = None,
    price_list: PriceList | str | None = None,
) -> BundleResult:
    """One subscription per component, grouped, billed together on one invoice.

    A percent-discount bundle bills each component at its price less the bundle percent; a
    fixed-price bundle bills each component at a share of the bundle price in proportion to
    the components' own prices (the rounding remainder on the last), so a full period of the
    group costs exactly the bundle price.
    """
    if bundle.archived_at is not None:
        raise ValidationError(
            f"Bundle {bundle.code} is archived.", code="bundle_archived", param="bundle"
        )
    components = list(bundle.components.select_related("plan", "plan__product").order_by("id"))
    for component in components:
        require_plan_available(component.plan, param="bundle")
    start = _clean_start_on(start_on)
    with transaction.atomic():
        locked_customer = _lock_customer(customer)
        chosen_currency = _currency_for(locked_customer, currency)
        chosen_list = _resolve_price_list(locked_customer, price_list)
        first_plan = components[0].plan
        day = _clean_billing_day(billing_day, first_plan)
        if day is None and first_plan.interval.months() is not None:
            day = first_plan.billing_day or locked_customer.billing_day
        shares = _bundle_shares(bundle, components, chosen_currency, chosen_list, start, trial)
        group = SubscriptionGroup.objects.create(
            customer=locked_customer, bundle=bundle, created_at=clock.now()
        )
        members: list[Subscription] = []
        lines: list[LineSpec] = []
        for component, share in zip(components, shares, strict=True):
            subscription, first_lines = _create(
                customer=locked_customer,
                plan=component.plan,
                actor=actor,
                quantity=component.quantity,
                trial=trial,
                start_on=start,
                currency=chosen_currency,
                price_list=chosen_list,
                billing_day=day,
                group=group,
                unit_amount=share,
            )
            members.append(subscription)
            lines += first_lines
        _set_customer_currency(locked_customer, chosen_currency, actor)
        audit_record(
            actor=actor,
            action="subscriptiongroup.create",
            instance=group,
            after=audit_snapshot(group),
        )
        invoice = state.issue_invoice(
            customer=locked_customer,
            currency=chosen_currency,
            billing_reason=Reason.SUBSCRIPTION_CREATE,
            lines=lines,
            actor=actor,
        )
    return BundleResult(group, members, invoice)


def _bundle_shares(
    bundle: Bundle,
    components: Sequence[Any],
    currency: str,
    price_list: PriceList,
    start: date,
    trial: bool,
) -> list[Decimal | None]:
    """Per-unit amounts replacing the catalog prices: None where the catalog price applies."""
    if bundle.pricing != Bundle.Pricing.FIXED_PRICE:
        return [None] * len(components)
    bundle_price = bundle_price_for(
        bundle=bundle, currency=currency, price_list=price_list, on=start
    )
    if bundle_price is None:
        raise ValidationError(
            f"Bundle {bundle.code} has no price in {currency}.",
            code="price_not_available",
            param="currency",
        )
    weights = []
    for component in components:
        paid = next(
            p for p in component.plan.phases.order_by("sequence") if p.kind != PlanPhase.Kind.TRIAL
        )
        price = price_for(phase=paid, currency=currency, price_list=price_list, on=start)
        if price is None:
            raise ValidationError(
                f"Plan {component.plan.code} has no price in {currency}.",
                code="price_not_available",
                param="currency",
            )
        weights.append(price.amount * component.quantity)
    totals = allocate(bundle_price.amount, weights, currency)
    units: list[Decimal | None] = []
    for component, total in zip(components, totals, strict=True):
        unit = (total / component.quantity).quantize(Decimal(1).scaleb(-DECIMAL_PLACES))
        if unit * component.quantity != total:
            raise ValidationError(
                f"The bundle price does not split evenly over {component.quantity} units of "
                f"{component.plan.code}.",
                code="bundle_price_indivisible",
                param="bundle",
            )
        units.append(unit)
    return units


# --- cancel ---------------------------------------------------------------------------------


def subscription_cancel(
    *,
    subscription: Subscription,
    actor: Actor,
    policy: str | None = None,
    reason: str = "",
    credit_unused: bool = True,
) -> LifecycleResult:
    """Cancel at the period end (default: undoable until then, no credit) or now (`immediate`:
    the unused days go to the customer's credit balance and unbilled usage is billed).
    Add-ons go with their base. `credit_unused=False` ends now without crediting the unused
    days: dunning's cancel for non-payment, where those days were never paid."""
    chosen = clean_policy(policy, default=Policy.END_OF_TERM)
    reason = (reason or "").strip()[:200]
    today = clock.today()
    with transaction.atomic():
        base, addons = state.lock_with_addons(subscription.pk)
        state.require_not_ended(base)
        billed = base.billed_through
        nothing_running = base.status in (Status.FUTURE, Status.PAUSED) or (
            billed is None or billed <= today
        )
        if chosen == Policy.END_OF_TERM and not nothing_running:
            if base.cancel_at_period_end:
                return LifecycleResult(base)  # already scheduled: a replay changes nothing
            for member in (base, *addons):
                before = audit_snapshot(member)
                member.cancel_at_period_end = True
                member.cancel_requested_at = clock.now()
                member.cancel_reason = reason
                state.record_event(
                    member,
                    Kind.CANCEL_SCHEDULED,
                    actor=actor,
                    data={"ends_on": member.billed_through, "reason": reason},
                )
                state.save(member, actor=actor, action="subscription.cancel", before=before)
            return LifecycleResult(base)
        lines: list[LineSpec] = []
        for member in (base, *addons):
            lines += _end_now(
                member, today, actor=actor, policy=chosen, reason=reason, credit=credit_unused
            )
        invoice = state.issue_invoice(
            customer=base.customer,
            currency=base.currency,
            billing_reason=Reason.SUBSCRIPTION_CANCEL,
            lines=lines,
            actor=actor,
        )
    return LifecycleResult(base, invoice)


def _end_now(
    subscription: Subscription,
    today: date,
    *,
    actor: Actor,
    policy: str,
    reason: str,
    credit: bool = True,
) -> list[LineSpec]:
    before = audit_snapshot(subscription)
    lines: list[LineSpec] = []
    billed = subscription.billed_through
    credited: tuple[date, date] | None = None
    if credit and subscription.status in state.RUNNING and billed is not None and billed > today:
        lines += state.credit_specs(subscription, today, billed)
        credited = (today, billed)
        subscription.billed_through = today
    if subscription.status in state.RUNNING:
        lines += state.close_usage(subscription, today)
    transitions.end_subscription(
        subscription,
        today,
        actor=actor,
        reason=reason or "canceled",
        data={"policy": policy, "credited": credited},
    )
    state.save(subscription, actor=actor, action="subscription.cancel", before=before)
    return lines


def subscription_undo_cancel(*, subscription: Subscription, actor: Actor) -> LifecycleResult:
    """Take back a cancel scheduled for the period end (the base's add-ons too)."""
    with transaction.atomic():
        base, addons = state.lock_with_addons(subscription.pk)
        state.require_not_ended(base)
        if not base.cancel_at_period_end:
            raise ConflictError(
                "No cancellation is scheduled for this subscription.",
                code="cancel_not_scheduled",
            )
        for member in (base, *addons):
            if not member.cancel_at_period_end:
                continue
            before = audit_snapshot(member)
            member.cancel_at_period_end = False
            member.cancel_requested_at = None
            member.cancel_reason = ""
            state.record_event(member, Kind.CANCEL_UNDONE, actor=actor)
            state.save(member, actor=actor, action="subscription.undo_cancel", before=before)
    return LifecycleResult(base)


# --- pause and resume -----------------------------------------------------------------------


def _clean_pause(
    subscription: Subscription, *, starts: date, cycles: int | None, resumes_on: date | None
) -> tuple[date, int | None]:
    if cycles is not None and resumes_on is not None:
        raise ValidationError(
            "Pause for a number of cycles or until a date, not both.",
            code="invalid_pause",
            param="resumes_on",
        )
    interval = subscription.plan.interval
    limit = settings.SUBSCRIPTION_MAX_PAUSE_CYCLES
    if resumes_on is None:
        cycles = 1 if cycles is None else cycles
        if isinstance(cycles, bool) or not isinstance(cycles, int) or cycles < 1:
            raise ValidationError(
                "cycles is a whole number of at least 1.", code="invalid_pause", param="cycles"
            )
        if cycles > limit:
            raise ValidationError(
                f"A pause lasts at most {limit} billing periods.",
                code="pause_too_long",
                param="cycles",
            )
        return add_interval(starts, interval, cycles), cycles
    if resumes_on <= starts:
        raise ValidationError(
            f"The pause starts on {starts}: it resumes after that.",
            code="invalid_pause",
            param="resumes_on",
        )
    if resumes_on > add_interval(starts, interval, limit):
        raise ValidationError(
            f"A pause lasts at most {limit} billing periods.",
            code="pause_too_long",
            param="resumes_on",
        )
    return resumes_on, None


def subscription_pause(
    *,
    subscription: Subscription,
    actor: Actor,
    when: str = PauseWhen.NOW,
    cycles: int | None = None,
    resumes_on: date | None = None,
) -> LifecycleResult:
    """Pause now (the unused days are credited) or at the period end, for `cycles` billing
    periods (1 by default) or until `resumes_on`; no invoices while paused. Add-ons pause along.
    """
    if when not in PauseWhen.ALL:
        raise ValidationError("when is `now` or `period_end`.", code="invalid_pause", param="when")
    today = clock.today()
    with transaction.atomic():
        base, addons = state.lock_with_addons(subscription.pk)
        state.require_not_ended(base)
        pending = [c for c in state.pending_changes(base) if c.kind == ScheduledChange.Kind.PAUSE]
        if base.status == Status.PAUSED or pending:
            raise ConflictError("This subscription is already paused.", code="already_paused")
        if base.status not in state.RUNNING:
            raise ConflictError(
                "Only an active subscription can be paused (not one in trial or not started).",
                code="subscription_not_active",
            )
        if base.cancel_at_period_end:
            raise ConflictError(
                "This subscription is canceling at its period end; undo that first.",
                code="cancel_scheduled",
            )
        assert base.billed_through is not None  # noqa: S101 - guaranteed by the state rules
        starts = today if when == PauseWhen.NOW else max(base.billed_through, today)
        resume_day, cycle_count = _clean_pause(
            base, starts=starts, cycles=cycles, resumes_on=resumes_on
        )
        lines: list[LineSpec] = []
        for member in (base, *addons):
            before = audit_snapshot(member)
            data = {"paused_on": starts, "resumes_on": resume_day, "when": when}
            if when == PauseWhen.NOW:
                lines += transitions.pause_now(member, starts, resume_day)
                state.record_event(member, Kind.PAUSED, actor=actor, effective_on=starts, data=data)
            else:
                ScheduledChange.objects.create(
                    subscription=member,
                    kind=ScheduledChange.Kind.PAUSE,
                    effective_on=starts,
                    pause_resumes_on=resume_day,
                    pause_cycles=cycle_count,
                    created_at=clock.now(),
                )
                state.record_event(
                    member, Kind.PAUSE_SCHEDULED, actor=actor, effective_on=starts, data=data
                )
            state.save(member, actor=actor, action="subscription.pause", before=before)
        invoice = state.issue_invoice(
            customer=base.customer,
            currency=base.currency,
            billing_reason=Reason.SUBSCRIPTION_UPDATE,
            lines=lines,
            actor=actor,
        )
    return LifecycleResult(base, invoice)


def subscription_resume(*, subscription: Subscription, actor: Actor) -> LifecycleResult:
    """Resume today: bill the prorated days to the next anchor date (the anchor is kept). A
    pause still only scheduled is called off instead."""
    today = clock.today()
    with transaction.atomic():
        base, addons = state.lock_with_addons(subscription.pk)
        state.require_not_ended(base)
        if base.status != Status.PAUSED:
            scheduled = [
                c for c in state.pending_changes(base) if c.kind == ScheduledChange.Kind.PAUSE
            ]
            if not scheduled:
                raise ConflictError("This subscription is not paused.", code="not_paused")
            for member in (base, *addons):
                _undo_pending(member, ScheduledChange.Kind.PAUSE, actor=actor)
            return LifecycleResult(base)
        lines: list[LineSpec] = []
        for member in (base, *addons):
            if member.status != Status.PAUSED:
                continue
            before = audit_snapshot(member)
            lines += transitions.resume(member, today, actor=actor)
            state.save(member, actor=actor, action="subscription.resume", before=before)
        invoice = state.issue_invoice(
            customer=base.customer,
            currency=base.currency,
            billing_reason=Reason.SUBSCRIPTION_UPDATE,
            lines=lines,
            actor=actor,
        )
    return LifecycleResult(base, invoice)


def _undo_pending(subscription: Subscription, kind: str, *, actor: Actor) -> bool:
    changes = [c for c in state.pending_changes(subscription) if c.kind == kind]
    if not changes:
        return False
    before = audit_snapshot(subscription)
    for change in changes:
        change.status = ScheduledChange.Status.CANCELED
        change.resolved_at = clock.now()
        change.save(update_fields=["status", "resolved_at"])
        state.record_event(
            subscription,
            Kind.CHANGE_UNDONE,
            actor=actor,
            data={
                "kind": kind,
                "effective_on": change.effective_on,
                "plan": change.plan.code if change.plan is not None else None,
                "quantity": change.quantity,
            },
        )
    state.save(subscription, actor=actor, action="subscription.undo_change", before=before)
    return True


# --- reactivate and renew -------------------------------------------------------------------


def subscription_reactivate(
    *, subscription: Subscription, actor: Actor, plan: Plan | None = None
) -> LifecycleResult:
    """A new subscription for an ended one (same plan unless told, quantity and price list),
    starting today without a trial; both timelines say so."""
    with transaction.atomic():
        ended = state.lock(subscription.pk)
        if ended.status != Status.CANCELED:
            raise ConflictError(
                "Only an ended subscription can be reactivated.", code="subscription_not_ended"
            )
        if ended.reactivations.exists():
            raise ConflictError(
                "This subscription has already been reactivated.", code="already_reactivated"
            )
        chosen = plan or ended.plan
        require_plan_available(chosen)
        quantity = clean_quantity(ended.quantity, chosen)
        customer = _lock_customer(ended.customer)
        parent = None
        if ended.parent_id is not None:
            parent = state.lock(ended.parent_id)
            state.require_not_ended(parent)
        new, lines = _create(
            customer=customer,
            plan=chosen,
            actor=actor,
            quantity=quantity,
            trial=False,
            start_on=clock.today(),
            currency=ended.currency,
            price_list=ended.price_list,
            billing_day=ended.billing_day if ended.billing_day and parent is None else None,
            parent=parent,
            previous=ended,
            unit_amount=None,
        )
        for row, data in ((ended, {"new_subscription": new.pk}), (new, {"previous": ended.pk})):
            state.record_event(row, Kind.REACTIVATED, actor=actor, data=data)
        audit_record(
            actor=actor,
            action="subscription.reactivate",
            instance=ended,
            after={"new_subscription": new.pk},
        )
        invoice = state.issue_invoice(
            customer=customer,
            currency=new.currency,
            billing_reason=Reason.SUBSCRIPTION_CREATE,
            lines=lines,
            actor=actor,
        )
    return LifecycleResult(new, invoice)


def subscription_renew(*, subscription: Subscription, actor: Actor) -> LifecycleResult:
    """Renew a fixed term: one more term for a term that does not renew by itself, or the next
    term now for one that does and has reached its end."""
    today = clock.today()
    with transaction.atomic():
        locked = state.lock(subscription.pk)
        state.require_not_ended(locked)
        phase = locked.phase
        if phase.kind != PlanPhase.Kind.FIXED_TERM or locked.phase_ends_on is None:
            raise ConflictError(
                "Only a subscription in a fixed term can be renewed.", code="not_fixed_term"
            )
        if phase.renews and locked.phase_ends_on > today:
            raise ConflictError(
                f"This term renews by itself on {locked.phase_ends_on}.",
                code="term_not_ended",
            )
        before = audit_snapshot(locked)
        outcome = transitions.Outcome()
        if not phase.renews:
            assert phase.duration is not None  # noqa: S101 - guaranteed by the state rules
            old_end = locked.phase_ends_on
            locked.phase_ends_on = add_interval(old_end, phase.duration)
            state.record_event(
                locked,
                Kind.RENEWED,
                actor=actor,
                effective_on=old_end,
                data={"term_ends_on": locked.phase_ends_on, "by_request": True},
            )
        state.save(locked, actor=actor, action="subscription.renew", before=before)
        transitions.advance(locked, today, actor=actor, outcome=outcome)
        invoice = state.issue_invoice(
            customer=locked.customer,
            currency=locked.currency,
            billing_reason=Reason.SUBSCRIPTION_CYCLE,
            lines=outcome.lines,
            actor=actor,
        )
    return LifecycleResult(locked, invoice)
