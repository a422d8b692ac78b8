"""Lifecycle scenarios with exact amounts, played day by day through the test clock.

The clock starts on 2026-01-15 12:00 UTC (tests/conftest.py). Amounts are worked out by hand:
quantity x unit x days / period days, rounded half up once per line.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from billing.models import Invoice, InvoiceLine
from catalog import services as catalog
from catalog.models import Coupon, Plan
from core.errors import ConflictError
from subscriptions.models import Subscription, SubscriptionEvent
from subscriptions.services import (
    LifecycleResult,
    subscription_cancel,
    subscription_change_plan,
    subscription_change_quantity,
    subscription_create,
    subscription_pause,
    subscription_renew,
    subscription_resume,
    subscription_undo_scheduled_change,
)
from tests.subscriptions.conftest import (
    STAFF,
    balance_of,
    evergreen,
    fixed_term,
    intro,
    invoices_of,
    lines_of,
    trial,
)

pytestmark = pytest.mark.django_db

D = Decimal
REC = InvoiceLine.Kind.RECURRING
CREDIT = InvoiceLine.Kind.PRORATION_CREDIT
CHARGE = InvoiceLine.Kind.PRORATION_CHARGE
FEE = InvoiceLine.Kind.FIXED_FEE


def _events(subscription: Subscription) -> list[str]:
    return list(subscription.events.order_by("id").values_list("kind", flat=True))


def test_a_ten_day_trial_then_a_monthly_price(
    make_plan: Any, customer: Any, advance_to: Any
) -> None:
    plan = make_plan("digital", phases=[trial(10), evergreen("30.00")])

    result = subscription_create(customer=customer, plan=plan, actor=STAFF)

    subscription = result.subscription
    assert result.invoice is None  # nothing to pay during the trial
    assert subscription.status == Subscription.Status.TRIALING
    assert subscription.billing_anchor == date(2026, 1, 25)
    assert subscription.next_transition_on == date(2026, 1, 25)

    advance_to(date(2026, 1, 24))
    assert invoices_of(customer) == []

    advance_to(date(2026, 1, 25))
    subscription.refresh_from_db()
    (first,) = invoices_of(customer)
    assert subscription.status == Subscription.Status.ACTIVE
    assert first.billing_reason == Invoice.BillingReason.SUBSCRIPTION_CREATE
    assert first.issued_on == date(2026, 1, 25)
    assert lines_of(first) == [(REC, date(2026, 1, 25), date(2026, 2, 25), D("30.00"))]

    advance_to(date(2026, 2, 25))
    second = invoices_of(customer)[1]
    assert second.billing_reason == Invoice.BillingReason.SUBSCRIPTION_CYCLE
    assert lines_of(second) == [(REC, date(2026, 2, 25), date(2026, 3, 25), D("30.00"))]
    assert _events(subscription) == ["created", "phase_started"]


def test_an_intro_price_for_three_months_then_the_evergreen_price(
    make_plan: Any, customer: Any, advance_to: Any
) -> None:
    plan = make_plan("intro", phases=[intro("10.00", 3), evergreen("30.00")])

    result = subscription_create(customer=customer, plan=plan, actor=STAFF)
    advance_to(date(2026, 5, 15))

    amounts = [(lines_of(i)[0][1], i.total) for i in invoices_of(customer)]
    assert amounts == [
        (date(2026, 1, 15), D("10.00")),
        (date(2026, 2, 15), D("10.00")),
        (date(2026, 3, 15), D("10.00")),
        (date(2026, 4, 15), D("30.00")),
        (date(2026, 5, 15), D("30.00")),
    ]
    subscription = result.subscription
    subscription.refresh_from_db()
    assert subscription.phase.kind == "evergreen"
    assert subscription.phase_started_on == date(2026, 4, 15)


def test_a_one_time_fee_comes_with_the_first_period_only(
    make_plan: Any, customer: Any, advance_to: Any
) -> None:
    plan = make_plan("setup", phases=[evergreen("30.00", setup_fee="50.00")])

    result = subscription_create(customer=customer, plan=plan, actor=STAFF)
    advance_to(date(2026, 2, 15))

    first, second = invoices_of(customer)
    assert first == result.invoice
    assert lines_of(first) == [
        (FEE, None, None, D("50.00")),
        (REC, date(2026, 1, 15), date(2026, 2, 15), D("30.00")),
    ]
    assert first.total == D("80.00")
    assert lines_of(second) == [(REC, date(2026, 2, 15), date(2026, 3, 15), D("30.00"))]


def test_an_immediate_mid_period_upgrade_of_an_annual_plan(
    make_plan: Any, customer: Any, set_today: Any
) -> None:
    silver = make_plan("silver-annual", "120.00", interval="year", tier_rank=1)
    gold = make_plan("gold-annual", "240.00", interval="year", tier_rank=2)
    subscription = subscription_create(customer=customer, plan=silver, actor=STAFF).subscription
    set_today(date(2026, 4, 10))

    result = subscription_change_plan(subscription=subscription, plan=gold, actor=STAFF)

    assert isinstance(result, LifecycleResult)
    assert result.invoice is not None
    # 280 unused days of the 365-day period [2026-01-15, 2027-01-15).
    assert lines_of(result.invoice) == [
        (CREDIT, date(2026, 4, 10), date(2027, 1, 15), D("-92.05")),  # 120 x 280 / 365
        (CHARGE, date(2026, 4, 10), date(2027, 1, 15), D("184.11")),  # 240 x 280 / 365
    ]
    assert result.invoice.total == D("92.06")
    assert result.invoice.billing_reason == Invoice.BillingReason.SUBSCRIPTION_UPDATE
    changed = result.subscription
    assert changed.plan == gold
    assert changed.billing_anchor == date(2026, 1, 15)
    assert changed.billed_through == date(2027, 1, 15)
    assert changed.scheduled_changes.count() == 0


def test_annual_to_monthly_credits_the_balance_and_the_change_back_uses_it(
    make_plan: Any, customer: Any, set_today: Any
) -> None:
    annual = make_plan("annual", "120.00", interval="year")
    monthly = make_plan("monthly", "10.00")
    subscription = subscription_create(customer=customer, plan=annual, actor=STAFF).subscription
    set_today(date(2026, 2, 10))

    down = subscription_change_plan(
        subscription=subscription, plan=monthly, policy="immediate", actor=STAFF
    )

    assert isinstance(down, LifecycleResult)
    assert down.invoice is not None
    assert lines_of(down.invoice) == [
        (CREDIT, date(2026, 2, 10), date(2027, 1, 15), D("-111.45")),  # 120 x 339 / 365
        (CHARGE, date(2026, 2, 10), date(2026, 2, 15), D("1.61")),  # 10 x 5 / 31
    ]
    assert down.invoice.total == D("-109.84")
    assert down.invoice.amount_due == D("0")
    assert balance_of(customer) == D("109.84")
    assert down.subscription.billed_through == date(2026, 2, 15)

    set_today(date(2026, 2, 12))
    up = subscription_change_plan(
        subscription=subscription, plan=annual, policy="immediate", actor=STAFF
    )

    assert isinstance(up, LifecycleResult)
    assert up.invoice is not None
    assert lines_of(up.invoice) == [
        (CREDIT, date(2026, 2, 12), date(2026, 2, 15), D("-0.97")),  # 10 x 3 / 31
        (CHARGE, date(2026, 2, 12), date(2027, 1, 15), D("110.79")),  # 120 x 337 / 365
    ]
    assert up.invoice.total == D("109.82")
    assert up.invoice.credit_applied == D("109.82")
    assert up.invoice.amount_due == D("0")
    assert balance_of(customer) == D("0.02")
    assert up.subscription.billing_anchor == date(2026, 1, 15)


def test_a_monthly_plan_created_on_the_31st(
    make_plan: Any, customer: Any, clock: Any, advance_to: Any
) -> None:
    from tests.subscriptions.conftest import midnight

    clock(midnight(date(2026, 1, 31)))
    subscription_create(customer=customer, plan=make_plan("monthly"), actor=STAFF)

    advance_to(date(2026, 4, 30))

    periods = [lines_of(i)[0][1:3] for i in invoices_of(customer)]
    assert periods == [
        (date(2026, 1, 31), date(2026, 2, 28)),
        (date(2026, 2, 28), date(2026, 3, 31)),
        (date(2026, 3, 31), date(2026, 4, 30)),
        (date(2026, 4, 30), date(2026, 5, 31)),
    ]
    assert {i.total for i in invoices_of(customer)} == {D("30.00")}


@pytest.mark.parametrize(
    ("billing_day", "first_line", "second_period"),
    [
        # [Jan 15, Feb 1) is 17 days of the 31-day period [Jan 1, Feb 1): 30 x 17 / 31.
        (
            1,
            (REC, date(2026, 1, 15), date(2026, 2, 1), D("16.45")),
            (date(2026, 2, 1), date(2026, 3, 1)),
        ),
        # [Jan 15, Jan 25) is 10 days of the 31-day period [Dec 25, Jan 25): 30 x 10 / 31.
        (
            25,
            (REC, date(2026, 1, 15), date(2026, 1, 25), D("9.68")),
            (date(2026, 1, 25), date(2026, 2, 25)),
        ),
    ],
)
def test_calendar_billing_prorates_the_first_slice_of_the_full_period(
    make_plan: Any,
    make_customer: Any,
    advance_to: Any,
    billing_day: int,
    first_line: tuple[Any, ...],
    second_period: tuple[date, date],
) -> None:
    customer = make_customer(billing_day=billing_day)

    result = subscription_create(customer=customer, plan=make_plan("monthly"), actor=STAFF)
    advance_to(date(2026, 2, 1))

    assert result.subscription.billing_anchor == second_period[0]
    assert result.invoice is not None
    assert lines_of(result.invoice) == [first_line]
    _, second = invoices_of(customer)
    assert lines_of(second) == [(REC, *second_period, D("30.00"))]


def test_the_plan_billing_day_wins_over_the_customers(make_plan: Any, make_customer: Any) -> None:
    customer = make_customer(billing_day=25)
    plan = make_plan("first-of-month", billing_day=1)

    subscription = subscription_create(customer=customer, plan=plan, actor=STAFF).subscription

    assert subscription.billing_day == 1
    assert subscription.billing_anchor == date(2026, 2, 1)


def test_an_immediate_cancel_credits_the_unused_days_to_the_balance(
    make_plan: Any, customer: Any, set_today: Any, advance_to: Any
) -> None:
    subscription = subscription_create(
        customer=customer, plan=make_plan("monthly"), actor=STAFF
    ).subscription
    set_today(date(2026, 1, 25))

    result = subscription_cancel(
        subscription=subscription, policy="immediate", reason="moving", actor=STAFF
    )

    assert result.invoice is not None
    assert result.invoice.billing_reason == Invoice.BillingReason.SUBSCRIPTION_CANCEL
    assert lines_of(result.invoice) == [
        (CREDIT, date(2026, 1, 25), date(2026, 2, 15), D("-20.32"))  # 30 x 21 / 31
    ]
    assert balance_of(customer) == D("20.32")
    ended = result.subscription
    assert ended.status == Subscription.Status.CANCELED
    assert ended.ended_on == date(2026, 1, 25)
    assert ended.cancel_reason == "moving"
    advance_to(date(2026, 4, 1))
    assert len(invoices_of(customer)) == 2  # nothing billed after the end
    with pytest.raises(ConflictError) as refused:
        subscription_cancel(subscription=subscription, policy="immediate", actor=STAFF)
    assert refused.value.code == "subscription_ended"


def test_a_cancel_at_period_end_keeps_access_and_can_be_undone(
    make_plan: Any, customer: Any, set_today: Any, advance_to: Any
) -> None:
    from subscriptions.services import subscription_undo_cancel

    subscription = subscription_create(
        customer=customer, plan=make_plan("monthly"), actor=STAFF
    ).subscription
    set_today(date(2026, 1, 20))

    scheduled = subscription_cancel(subscription=subscription, actor=STAFF)
    again = subscription_cancel(subscription=subscription, actor=STAFF)

    assert scheduled.invoice is None
    assert again.subscription.cancel_at_period_end is True
    assert _events(subscription).count("cancel_scheduled") == 1  # the replay changed nothing
    subscription_undo_cancel(subscription=subscription, actor=STAFF)
    subscription_cancel(subscription=subscription, actor=STAFF)
    advance_to(date(2026, 3, 1))
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.CANCELED
    assert subscription.ended_on == date(2026, 2, 15)
    assert len(invoices_of(customer)) == 1  # no renewal, no credit
    assert _events(subscription)[-4:] == [
        "cancel_scheduled",
        "cancel_undone",
        "cancel_scheduled",
        "canceled",
    ]


def test_pause_credits_unused_days_and_resume_bills_to_the_next_anchor_date(
    make_plan: Any, customer: Any, set_today: Any, advance_to: Any
) -> None:
    subscription = subscription_create(
        customer=customer, plan=make_plan("monthly"), actor=STAFF
    ).subscription
    set_today(date(2026, 1, 25))

    paused = subscription_pause(subscription=subscription, resumes_on=date(2026, 3, 5), actor=STAFF)

    assert paused.invoice is not None
    assert lines_of(paused.invoice) == [(CREDIT, date(2026, 1, 25), date(2026, 2, 15), D("-20.32"))]
    assert balance_of(customer) == D("20.32")
    advance_to(date(2026, 3, 4))
    assert len(invoices_of(customer)) == 2  # no invoice while paused

    advance_to(date(2026, 3, 5))
    resumed = invoices_of(customer)[2]
    # [Mar 5, Mar 15) is 10 days of the 28-day period [Feb 15, Mar 15): 30 x 10 / 28.
    assert lines_of(resumed) == [(REC, date(2026, 3, 5), date(2026, 3, 15), D("10.71"))]
    assert resumed.credit_applied == D("10.71")
    assert balance_of(customer) == D("9.61")
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.ACTIVE
    assert subscription.billing_anchor == date(2026, 1, 15)

    advance_to(date(2026, 3, 15))
    renewal = invoices_of(customer)[3]
    assert lines_of(renewal) == [(REC, date(2026, 3, 15), date(2026, 4, 15), D("30.00"))]
    assert renewal.amount_due == D("20.39")
    assert _events(subscription)[-2:] == ["paused", "resumed"]


def test_a_pause_at_period_end_for_one_cycle_then_a_resume_by_hand(
    make_plan: Any, customer: Any, set_today: Any, advance_to: Any
) -> None:
    subscription = subscription_create(
        customer=customer, plan=make_plan("monthly"), actor=STAFF
    ).subscription

    scheduled = subscription_pause(subscription=subscription, when="period_end", actor=STAFF)

    assert scheduled.invoice is None
    advance_to(date(2026, 2, 20))
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.PAUSED
    assert subscription.paused_on == date(2026, 2, 15)
    assert subscription.pause_resumes_on == date(2026, 3, 15)
    assert len(invoices_of(customer)) == 1

    set_today(date(2026, 2, 22))
    result = subscription_resume(subscription=subscription, actor=STAFF)

    assert result.invoice is not None
    # [Feb 22, Mar 15) is 21 days of the 28-day period [Feb 15, Mar 15).
    assert lines_of(result.invoice) == [(REC, date(2026, 2, 22), date(2026, 3, 15), D("22.50"))]
    assert result.subscription.next_transition_on == date(2026, 3, 15)


def test_a_coupon_for_two_cycles_ends_after_them(
    make_plan: Any, customer: Any, advance_to: Any
) -> None:
    coupon = catalog.coupon_create(
        code="welcome",
        name="Welcome",
        discount_type=Coupon.DiscountType.PERCENT,
        percent_off=D("20"),
        duration=Coupon.Duration.REPEATING,
        duration_cycles=2,
        actor=STAFF,
    )

    subscription_create(customer=customer, plan=make_plan("monthly"), coupon=coupon, actor=STAFF)
    advance_to(date(2026, 3, 15))

    assert [(i.discount_total, i.total) for i in invoices_of(customer)] == [
        (D("6.00"), D("24.00")),
        (D("6.00"), D("24.00")),
        (D("0.00"), D("30.00")),
    ]
    coupon.refresh_from_db()
    assert coupon.times_redeemed == 1


def test_a_promotion_code_redeems_its_coupon_and_counts_on_both(
    make_plan: Any, customer: Any
) -> None:
    coupon = catalog.coupon_create(
        code="spring",
        name="Spring",
        discount_type=Coupon.DiscountType.PERCENT,
        percent_off=D("50"),
        duration=Coupon.Duration.ONCE,
        actor=STAFF,
    )
    code = catalog.promotion_code_create(coupon=coupon, code="SPRING50", actor=STAFF)

    result = subscription_create(
        customer=customer, plan=make_plan("monthly"), promotion_code="spring50", actor=STAFF
    )

    assert result.invoice is not None
    assert result.invoice.total == D("15.00")
    code.refresh_from_db()
    coupon.refresh_from_db()
    assert (code.times_redeemed, coupon.times_redeemed) == (1, 1)
    (discount,) = result.subscription.discounts.all()
    assert (discount.starts_on, discount.ends_on) == (date(2026, 1, 15), date(2026, 2, 15))


@pytest.mark.parametrize(
    ("inclusive", "tax", "total"),
    [(True, D("5.00"), D("30.00")), (False, D("6.00"), D("36.00"))],
)
def test_tax_inclusive_and_exclusive_on_renewals(
    make_plan: Any,
    make_customer: Any,
    advance_to: Any,
    inclusive: bool,
    tax: Decimal,
    total: Decimal,
) -> None:
    catalog.tax_rate_create(
        name="VAT", country="FR", percentage=D("20"), inclusive=inclusive, actor=STAFF
    )
    customer = make_customer(country="FR")

    subscription_create(customer=customer, plan=make_plan("monthly"), actor=STAFF)
    advance_to(date(2026, 2, 15))

    assert [(i.subtotal, i.tax_total, i.total) for i in invoices_of(customer)] == [
        (D("30.00"), tax, total),
        (D("30.00"), tax, total),
    ]


def test_a_yen_customer_is_billed_in_whole_yen(
    product: Any, default_list: Any, make_customer: Any, advance_to: Any
) -> None:
    plan = catalog.plan_create(
        product=product,
        code="yen-monthly",
        name="Yen monthly",
        billing_interval="month",
        phases=[evergreen("1000", currency="JPY")],
        actor=STAFF,
    )
    customer = make_customer(currency="JPY", billing_day=1)

    result = subscription_create(customer=customer, plan=plan, actor=STAFF)
    advance_to(date(2026, 2, 1))

    # 1000 x 17 / 31 = 548.39 -> 548 yen.
    assert [i.total for i in invoices_of(customer)] == [D("548"), D("1000")]
    assert result.subscription.currency == "JPY"


def test_a_customer_without_currency_gets_the_subscriptions(
    make_plan: Any, make_customer: Any
) -> None:
    customer = make_customer(currency=None)

    subscription_create(customer=customer, plan=make_plan("monthly"), currency="usd", actor=STAFF)

    customer.refresh_from_db()
    assert customer.currency == "USD"


def test_a_fixed_term_ends_at_its_term(make_plan: Any, customer: Any, advance_to: Any) -> None:
    plan = make_plan("three-months", phases=[fixed_term("20.00", 3)])

    subscription = subscription_create(customer=customer, plan=plan, actor=STAFF).subscription
    advance_to(date(2026, 6, 1))

    assert [i.total for i in invoices_of(customer)] == [D("20.00")] * 3
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.CANCELED
    assert subscription.ended_on == date(2026, 4, 15)
    assert subscription.cancel_reason == "term_ended"


def test_a_fixed_term_that_renews_starts_a_new_term(
    make_plan: Any, customer: Any, advance_to: Any
) -> None:
    plan = make_plan("renewing", phases=[fixed_term("20.00", 2, renews=True)])

    subscription = subscription_create(customer=customer, plan=plan, actor=STAFF).subscription
    advance_to(date(2026, 5, 15))

    assert [i.total for i in invoices_of(customer)] == [D("20.00")] * 5
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.ACTIVE
    assert subscription.phase_ends_on == date(2026, 7, 15)
    assert _events(subscription).count("renewed") == 2


def test_a_fixed_term_renewed_on_request_goes_on(
    make_plan: Any, customer: Any, set_today: Any, advance_to: Any
) -> None:
    plan = make_plan("two-months", phases=[fixed_term("20.00", 2)])
    subscription = subscription_create(customer=customer, plan=plan, actor=STAFF).subscription
    set_today(date(2026, 3, 1))

    renewed = subscription_renew(subscription=subscription, actor=STAFF)
    advance_to(date(2026, 6, 1))

    assert renewed.subscription.phase_ends_on == date(2026, 5, 15)
    assert [i.total for i in invoices_of(customer)] == [D("20.00")] * 4
    subscription.refresh_from_db()
    assert subscription.ended_on == date(2026, 5, 15)


def test_a_scheduled_downgrade_applies_at_the_period_end(
    make_plan: Any, customer: Any, set_today: Any, advance_to: Any
) -> None:
    gold = make_plan("gold", "50.00", tier_rank=2)
    silver = make_plan("silver", "30.00", tier_rank=1)
    subscription = subscription_create(customer=customer, plan=gold, actor=STAFF).subscription
    set_today(date(2026, 1, 20))

    result = subscription_change_plan(subscription=subscription, plan=silver, actor=STAFF)

    assert isinstance(result, LifecycleResult)
    assert result.invoice is None
    assert result.subscription.plan == gold
    (pending,) = result.subscription.scheduled_changes.all()
    assert (pending.kind, pending.effective_on, pending.plan) == (
        "change_plan",
        date(2026, 2, 15),
        silver,
    )
    advance_to(date(2026, 2, 15))
    subscription.refresh_from_db()
    assert subscription.plan == silver
    assert lines_of(invoices_of(customer)[1]) == [
        (REC, date(2026, 2, 15), date(2026, 3, 15), D("30.00"))
    ]


def test_an_undone_downgrade_leaves_the_plan_as_it_was(
    make_plan: Any, customer: Any, set_today: Any, advance_to: Any
) -> None:
    gold = make_plan("gold", "50.00", tier_rank=2)
    silver = make_plan("silver", "30.00", tier_rank=1)
    subscription = subscription_create(customer=customer, plan=gold, actor=STAFF).subscription
    set_today(date(2026, 1, 20))
    subscription_change_plan(subscription=subscription, plan=silver, actor=STAFF)

    subscription_undo_scheduled_change(subscription=subscription, kind="change_plan", actor=STAFF)
    advance_to(date(2026, 2, 15))

    subscription.refresh_from_db()
    assert subscription.plan == gold
    assert invoices_of(customer)[1].total == D("50.00")
    with pytest.raises(ConflictError) as refused:
        subscription_undo_scheduled_change(
            subscription=subscription, kind="change_plan", actor=STAFF
        )
    assert refused.value.code == "no_pending_change"


def test_more_seats_now_are_prorated_and_fewer_wait_for_the_period_end(
    make_plan: Any, customer: Any, set_today: Any, advance_to: Any
) -> None:
    seats = make_plan("team", "10.00", max_quantity=50)
    subscription = subscription_create(
        customer=customer, plan=seats, quantity=3, actor=STAFF
    ).subscription
    set_today(date(2026, 1, 25))

    more = subscription_change_quantity(subscription=subscription, quantity=5, actor=STAFF)
    fewer = subscription_change_quantity(subscription=subscription, quantity=2, actor=STAFF)

    assert isinstance(more, LifecycleResult)
    assert more.invoice is not None
    assert lines_of(more.invoice) == [
        (CREDIT, date(2026, 1, 25), date(2026, 2, 15), D("-20.32")),  # 3 x 10 x 21 / 31
        (CHARGE, date(2026, 1, 25), date(2026, 2, 15), D("33.87")),  # 5 x 10 x 21 / 31
    ]
    assert isinstance(fewer, LifecycleResult)
    assert fewer.invoice is None
    advance_to(date(2026, 2, 15))
    assert invoices_of(customer)[-1].total == D("20.00")


def test_an_addon_bills_on_its_bases_anchor_and_on_the_same_invoice(
    make_plan: Any, addon_product: Any, customer: Any, set_today: Any, advance_to: Any
) -> None:
    extra = make_plan("puzzles", "6.00", for_product=addon_product)
    base_plan = make_plan("monthly", addons=[extra])
    base = subscription_create(customer=customer, plan=base_plan, actor=STAFF).subscription
    set_today(date(2026, 1, 25))

    addon = subscription_create(customer=customer, plan=extra, parent=base, actor=STAFF)

    assert addon.invoice is not None
    # [Jan 25, Feb 15) of the base's 31-day period: 6 x 21 / 31.
    assert lines_of(addon.invoice) == [(REC, date(2026, 1, 25), date(2026, 2, 15), D("4.06"))]
    assert addon.subscription.billing_anchor == date(2026, 1, 15)
    advance_to(date(2026, 2, 15))
    renewal = invoices_of(customer)[-1]
    assert len(invoices_of(customer)) == 3
    assert [(line[0], line[3]) for line in lines_of(renewal)] == [
        (REC, D("30.00")),
        (REC, D("6.00")),
    ]


def test_a_fixed_price_bundle_invoice_totals_the_bundle_price(
    make_plan: Any, customer: Any, default_list: Any, advance_to: Any
) -> None:
    from catalog.services import BundleComponentSpec, BundlePriceSpec
    from subscriptions.services import subscription_create_bundle

    print_plan = make_plan("print", "9.99")
    digital = make_plan("digital", "14.99")
    bundle = catalog.bundle_create(
        code="print-digital",
        name="Print + Digital",
        pricing="fixed_price",
        components=[BundleComponentSpec(print_plan), BundleComponentSpec(digital)],
        prices=[BundlePriceSpec(currency="USD", amount=D("20.00"))],
        actor=STAFF,
    )

    result = subscription_create_bundle(customer=customer, bundle=bundle, actor=STAFF)
    advance_to(date(2026, 2, 15))

    assert result.invoice is not None
    # 20 x 9.99 / 24.98 = 8.00; the rest, 12.00, on the last component.
    assert [line[3] for line in lines_of(result.invoice)] == [D("8.00"), D("12.00")]
    assert [i.total for i in invoices_of(customer)] == [D("20.00"), D("20.00")]
    assert {s.group_id for s in result.subscriptions} == {result.group.pk}


def test_a_percent_bundle_discounts_each_component(
    make_plan: Any, customer: Any, default_list: Any
) -> None:
    from catalog.services import BundleComponentSpec
    from subscriptions.services import subscription_create_bundle

    bundle = catalog.bundle_create(
        code="duo",
        name="Duo",
        pricing="percent_discount",
        discount_percent=D("10"),
        components=[
            BundleComponentSpec(make_plan("print", "9.99")),
            BundleComponentSpec(make_plan("digital", "14.99")),
        ],
        actor=STAFF,
    )

    result = subscription_create_bundle(customer=customer, bundle=bundle, actor=STAFF)

    assert result.invoice is not None
    # 9.99 x 0.9 = 8.991 -> 8.99; 14.99 x 0.9 = 13.491 -> 13.49.
    assert [line[3] for line in lines_of(result.invoice)] == [D("8.99"), D("13.49")]
    assert result.invoice.total == D("22.48")


def test_a_future_start_bills_nothing_until_it_starts(
    make_plan: Any, customer: Any, advance_to: Any
) -> None:
    result = subscription_create(
        customer=customer, plan=make_plan("monthly"), start_on=date(2026, 2, 1), actor=STAFF
    )

    assert result.subscription.status == Subscription.Status.FUTURE
    assert result.invoice is None
    advance_to(date(2026, 2, 1))
    result.subscription.refresh_from_db()
    assert result.subscription.status == Subscription.Status.ACTIVE
    assert lines_of(invoices_of(customer)[0]) == [
        (REC, date(2026, 2, 1), date(2026, 3, 1), D("30.00"))
    ]


def test_reactivation_is_a_new_subscription_linked_on_both_timelines(
    make_plan: Any, customer: Any, set_today: Any
) -> None:
    from subscriptions.services import subscription_reactivate

    plan: Plan = make_plan("monthly")
    old = subscription_create(customer=customer, plan=plan, actor=STAFF).subscription
    subscription_cancel(subscription=old, policy="immediate", actor=STAFF)
    set_today(date(2026, 3, 3))

    result = subscription_reactivate(subscription=old, actor=STAFF)

    new = result.subscription
    assert new.previous == old
    assert new.start_on == date(2026, 3, 3)
    assert new.billing_anchor == date(2026, 3, 3)
    assert result.invoice is not None
    assert result.invoice.total == D("30.00")
    assert _events(old)[-1] == SubscriptionEvent.Kind.REACTIVATED
    assert _events(new) == ["created", "reactivated"]
    with pytest.raises(ConflictError) as refused:
        subscription_reactivate(subscription=old, actor=STAFF)
    assert refused.value.code == "already_reactivated"


def test_a_year_of_renewals_reports_what_the_daily_work_did(
    make_plan: Any, customer: Any, advance_to: Any
) -> None:
    subscription_create(customer=customer, plan=make_plan("monthly"), actor=STAFF)

    report = advance_to(date(2027, 1, 15))

    work = [
        day["work"]["subscriptions"] for day in report["days"] if "subscriptions" in day["work"]
    ]
    assert len(work) == 12
    assert all(w == {"invoices": 1, "renewed": 1} for w in work)
    assert len(invoices_of(customer)) == 13
    assert sum(i.total for i in invoices_of(customer)) == D("390.00")


def test_an_intro_phase_ending_during_a_pause_resumes_at_the_evergreen_price(
    make_plan: Any, customer: Any, set_today: Any, advance_to: Any
) -> None:
    plan = make_plan("intro", phases=[intro("10.00", 1), evergreen("30.00")])
    subscription = subscription_create(customer=customer, plan=plan, actor=STAFF).subscription
    set_today(date(2026, 2, 5))
    subscription_pause(subscription=subscription, resumes_on=date(2026, 3, 1), actor=STAFF)

    advance_to(date(2026, 3, 1))

    subscription.refresh_from_db()
    assert subscription.phase.kind == "evergreen"
    assert subscription.phase_started_on == date(2026, 2, 15)
    # [Mar 1, Mar 15) is 14 of the 28 days of [Feb 15, Mar 15), at the evergreen price.
    assert lines_of(invoices_of(customer)[-1]) == [
        (REC, date(2026, 3, 1), date(2026, 3, 15), D("15.00"))
    ]


def test_a_fixed_term_ends_even_while_paused(
    make_plan: Any, customer: Any, advance_to: Any
) -> None:
    plan = make_plan("short-term", phases=[fixed_term("20.00", 2)])
    subscription = subscription_create(customer=customer, plan=plan, actor=STAFF).subscription
    advance_to(date(2026, 3, 1))
    subscription_pause(subscription=subscription, cycles=3, actor=STAFF)

    advance_to(date(2026, 6, 1))

    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.CANCELED
    assert subscription.ended_on == date(2026, 3, 15)
    assert subscription.cancel_reason == "term_ended"
    assert len(invoices_of(customer)) == 3  # two periods and the pause credit, nothing after
