"""Bad input gets a clear error and changes nothing: no row, no invoice, no event, no count."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from billing.models import Invoice
from catalog import services as catalog
from catalog.models import Coupon
from core.errors import ApplicationError, ConflictError, ValidationError
from core.models import AuditLog
from subscriptions.models import ScheduledChange, Subscription, SubscriptionEvent
from subscriptions.services import (
    subscription_cancel,
    subscription_change_plan,
    subscription_change_quantity,
    subscription_create,
    subscription_pause,
    subscription_resume,
    subscription_undo_cancel,
)
from tests.subscriptions.conftest import STAFF, evergreen

pytestmark = pytest.mark.django_db


def _footprint() -> tuple[int, ...]:
    return (
        Subscription.objects.count(),
        Invoice.objects.count(),
        SubscriptionEvent.objects.count(),
        ScheduledChange.objects.count(),
        AuditLog.objects.count(),
    )


def _refused(call: Callable[[], Any], kind: type[ApplicationError], code: str) -> ApplicationError:
    before = _footprint()
    with pytest.raises(kind) as refused:
        call()
    assert refused.value.code == code
    assert _footprint() == before
    return refused.value


def test_a_plan_without_a_price_in_the_customers_currency(make_plan: Any, customer: Any) -> None:
    euro_only = make_plan("euro", phases=[evergreen("9.00", currency="EUR")])

    error = _refused(
        lambda: subscription_create(customer=customer, plan=euro_only, actor=STAFF),
        ValidationError,
        "currency_mismatch",
    )

    assert error.param == "plan"


def test_a_change_to_a_plan_in_another_currency(make_plan: Any, customer: Any) -> None:
    subscription = subscription_create(
        customer=customer, plan=make_plan("monthly"), actor=STAFF
    ).subscription
    euro_only = make_plan("euro", phases=[evergreen("90.00", currency="EUR")])

    _refused(
        lambda: subscription_change_plan(subscription=subscription, plan=euro_only, actor=STAFF),
        ValidationError,
        "currency_mismatch",
    )


def test_a_customer_without_currency_needs_one(make_plan: Any, make_customer: Any) -> None:
    customer = make_customer(currency=None)

    monthly = make_plan("monthly")
    _refused(
        lambda: subscription_create(customer=customer, plan=monthly, actor=STAFF),
        ValidationError,
        "currency_required",
    )
    customer.refresh_from_db()
    assert customer.currency == ""


@pytest.mark.parametrize(
    "call",
    [
        lambda s, p: subscription_change_plan(subscription=s, plan=p, actor=STAFF),
        lambda s, p: subscription_change_quantity(subscription=s, quantity=2, actor=STAFF),
        lambda s, p: subscription_cancel(subscription=s, actor=STAFF),
        lambda s, p: subscription_pause(subscription=s, actor=STAFF),
        lambda s, p: subscription_resume(subscription=s, actor=STAFF),
        lambda s, p: subscription_undo_cancel(subscription=s, actor=STAFF),
    ],
)
def test_a_change_on_an_ended_subscription(make_plan: Any, customer: Any, call: Any) -> None:
    gold = make_plan("gold", "50.00")
    subscription = subscription_create(
        customer=customer, plan=make_plan("monthly"), actor=STAFF
    ).subscription
    subscription_cancel(subscription=subscription, policy="immediate", actor=STAFF)

    _refused(lambda: call(subscription, gold), ConflictError, "subscription_ended")


def _coupon(**fields: Any) -> Coupon:
    return catalog.coupon_create(
        code=fields.pop("code", "deal"),
        name="Deal",
        discount_type=Coupon.DiscountType.PERCENT,
        percent_off=Decimal("10"),
        duration=Coupon.Duration.FOREVER,
        actor=STAFF,
        **fields,
    )


def test_an_expired_coupon(make_plan: Any, customer: Any, clock: Any) -> None:
    coupon = _coupon(redeem_by=datetime(2026, 1, 20, tzinfo=UTC))
    clock(datetime(2026, 1, 21, tzinfo=UTC))

    monthly = make_plan("monthly")
    _refused(
        lambda: subscription_create(customer=customer, plan=monthly, coupon=coupon, actor=STAFF),
        ValidationError,
        "coupon_expired",
    )
    coupon.refresh_from_db()
    assert coupon.times_redeemed == 0


def test_an_exhausted_coupon(make_plan: Any, make_customer: Any) -> None:
    plan = make_plan("monthly")
    coupon = _coupon(max_redemptions=1)
    subscription_create(customer=make_customer(), plan=plan, coupon="deal", actor=STAFF)
    latecomer = make_customer()

    _refused(
        lambda: subscription_create(customer=latecomer, plan=plan, coupon=coupon, actor=STAFF),
        ValidationError,
        "coupon_exhausted",
    )
    coupon.refresh_from_db()
    assert coupon.times_redeemed == 1


def test_a_coupon_for_another_plan(make_plan: Any, customer: Any) -> None:
    coupon = _coupon(plans=[make_plan("other")])

    monthly = make_plan("monthly")
    _refused(
        lambda: subscription_create(customer=customer, plan=monthly, coupon=coupon, actor=STAFF),
        ValidationError,
        "coupon_not_applicable",
    )


def test_an_unknown_promotion_code(make_plan: Any, customer: Any) -> None:
    monthly = make_plan("monthly")
    _refused(
        lambda: subscription_create(
            customer=customer, plan=monthly, promotion_code="NOPE", actor=STAFF
        ),
        ValidationError,
        "promotion_code_not_found",
    )


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [({"cycles": 4}, "cycles"), ({"resumes_on": date(2026, 4, 26)}, "resumes_on")],
)
def test_a_pause_longer_than_the_limit(
    make_plan: Any, customer: Any, set_today: Any, kwargs: dict[str, Any], param: str
) -> None:
    subscription = subscription_create(
        customer=customer, plan=make_plan("monthly"), actor=STAFF
    ).subscription
    set_today(date(2026, 1, 25))

    error = _refused(
        lambda: subscription_pause(subscription=subscription, actor=STAFF, **kwargs),
        ValidationError,
        "pause_too_long",
    )

    assert error.param == param
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.ACTIVE


def test_the_pause_limit_comes_from_the_settings(
    make_plan: Any, customer: Any, settings: Any
) -> None:
    settings.SUBSCRIPTION_MAX_PAUSE_CYCLES = 1
    subscription = subscription_create(
        customer=customer, plan=make_plan("monthly"), actor=STAFF
    ).subscription

    _refused(
        lambda: subscription_pause(subscription=subscription, cycles=2, actor=STAFF),
        ValidationError,
        "pause_too_long",
    )


def test_a_pause_twice(make_plan: Any, customer: Any) -> None:
    subscription = subscription_create(
        customer=customer, plan=make_plan("monthly"), actor=STAFF
    ).subscription
    subscription_pause(subscription=subscription, when="period_end", actor=STAFF)

    _refused(
        lambda: subscription_pause(subscription=subscription, actor=STAFF),
        ConflictError,
        "already_paused",
    )


def test_resume_without_a_pause(make_plan: Any, customer: Any) -> None:
    subscription = subscription_create(
        customer=customer, plan=make_plan("monthly"), actor=STAFF
    ).subscription

    _refused(
        lambda: subscription_resume(subscription=subscription, actor=STAFF),
        ConflictError,
        "not_paused",
    )


def test_undo_cancel_without_a_cancel(make_plan: Any, customer: Any) -> None:
    subscription = subscription_create(
        customer=customer, plan=make_plan("monthly"), actor=STAFF
    ).subscription

    _refused(
        lambda: subscription_undo_cancel(subscription=subscription, actor=STAFF),
        ConflictError,
        "cancel_not_scheduled",
    )


@pytest.mark.parametrize("quantity", [0, -1, 51])
def test_a_quantity_out_of_bounds(make_plan: Any, customer: Any, quantity: int) -> None:
    plan = make_plan("team", "10.00", max_quantity=50)

    _refused(
        lambda: subscription_create(customer=customer, plan=plan, quantity=quantity, actor=STAFF),
        ValidationError,
        "invalid_quantity",
    )


def test_a_quantity_change_below_one(make_plan: Any, customer: Any) -> None:
    subscription = subscription_create(
        customer=customer, plan=make_plan("team", "10.00"), quantity=2, actor=STAFF
    ).subscription

    _refused(
        lambda: subscription_change_quantity(subscription=subscription, quantity=0, actor=STAFF),
        ValidationError,
        "invalid_quantity",
    )


def test_an_unknown_price_list(make_plan: Any, customer: Any) -> None:
    monthly = make_plan("monthly")
    error = _refused(
        lambda: subscription_create(
            customer=customer, plan=monthly, price_list="nowhere", actor=STAFF
        ),
        ValidationError,
        "price_list_not_found",
    )

    assert error.param == "price_list"


def test_an_archived_plan(make_plan: Any, customer: Any) -> None:
    plan = make_plan("old")
    catalog.plan_archive(plan=plan, actor=STAFF)

    _refused(
        lambda: subscription_create(customer=customer, plan=plan, actor=STAFF),
        ValidationError,
        "plan_archived",
    )


def test_a_start_in_the_past(make_plan: Any, customer: Any) -> None:
    monthly = make_plan("monthly")
    _refused(
        lambda: subscription_create(
            customer=customer, plan=monthly, start_on=date(2026, 1, 1), actor=STAFF
        ),
        ValidationError,
        "invalid_start_on",
    )


def test_an_addon_not_offered_on_the_base_plan(
    make_plan: Any, addon_product: Any, customer: Any
) -> None:
    extra = make_plan("puzzles", "6.00", for_product=addon_product)
    base = subscription_create(customer=customer, plan=make_plan("monthly"), actor=STAFF)

    _refused(
        lambda: subscription_create(
            customer=customer, plan=extra, parent=base.subscription, actor=STAFF
        ),
        ValidationError,
        "addon_not_allowed",
    )


def test_a_change_to_the_same_plan(make_plan: Any, customer: Any) -> None:
    plan = make_plan("monthly")
    subscription = subscription_create(customer=customer, plan=plan, actor=STAFF).subscription

    _refused(
        lambda: subscription_change_plan(subscription=subscription, plan=plan, actor=STAFF),
        ValidationError,
        "plan_unchanged",
    )


def test_an_unknown_policy(make_plan: Any, customer: Any) -> None:
    subscription = subscription_create(
        customer=customer, plan=make_plan("monthly"), actor=STAFF
    ).subscription

    _refused(
        lambda: subscription_cancel(subscription=subscription, policy="later", actor=STAFF),
        ValidationError,
        "invalid_policy",
    )
