"""Renewal, trial-ending and price-change notices: the right day, once, with the right amount.

Subscriptions are made with the lifecycle services and the days are played through the test
clock (its advance runs the lifecycle's daily work, then the notices); `set_today` moves the
clock over quiet stretches without running anything.
"""

from __future__ import annotations

import threading
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from django.core import mail
from django.db import connection

from catalog import services as catalog
from core import clock as platform_clock
from core.notifications.models import Notification
from core.webhooks.models import OutboxEvent
from subscriptions.models import Subscription
from subscriptions.notices import notices_process_day, notices_send_today
from subscriptions.services import (
    PauseWhen,
    subscription_cancel,
    subscription_change_plan,
    subscription_create,
    subscription_pause,
    subscription_undo_cancel,
)
from tests.subscriptions.conftest import (
    STAFF,
    evergreen,
    fixed_term,
    intro,
    midnight,
    trial,
)

pytestmark = pytest.mark.django_db

PORTAL = "http://127.0.0.1:8000/portal/"


def subjects() -> list[str]:
    return [str(message.subject) for message in mail.outbox]


def notices_reported(report: dict[str, Any]) -> list[tuple[str, dict[str, int]]]:
    """What the advance reports of the notices (other daily work reports its own)."""
    return [
        (day["date"], day["work"]["subscription_notices"])
        for day in report["days"]
        if "subscription_notices" in day["work"]
    ]


def annual(make_plan: Any, amount: str = "120.00", **kwargs: Any) -> Any:
    kwargs.setdefault("name", "Annual News")
    return make_plan("annual", amount, interval="year", **kwargs)


def subscribe(customer: Any, plan: Any, **kwargs: Any) -> Subscription:
    return subscription_create(customer=customer, plan=plan, actor=STAFF, **kwargs).subscription


# --- renewal notices --------------------------------------------------------------------------


def test_an_annual_subscription_is_told_exactly_30_days_before_it_renews(
    make_plan: Any, customer: Any, set_today: Any, advance_to: Any
) -> None:
    subscription = subscribe(customer, annual(make_plan))
    set_today(date(2026, 12, 14))

    advance_to(date(2026, 12, 15))
    assert mail.outbox == []

    report = advance_to(date(2026, 12, 16))

    assert notices_reported(report) == [("2026-12-16", {"renewal_notices": 1})]
    (message,) = mail.outbox
    assert message.to == [customer.email]
    assert message.subject == "Your Annual News subscription renews on January 15, 2027"
    assert (
        "Your Annual News subscription renews on January 15, 2027 for another year. "
        "On that day we will charge 120.00 USD." in message.body
    )
    assert f"go to your account: {PORTAL}" in message.body
    assert f'<a href="{PORTAL}">' in message.alternatives[0][0]  # type: ignore[attr-defined]
    notification = Notification.objects.get()
    assert notification.kind == "renewal_notice"
    assert notification.dedupe_key == f"renewal_notice:{subscription.pk}:2027-01-15"
    assert notification.recipient == customer.email
    assert notification.customer_id == customer.pk
    assert (notification.related_type, notification.related_id) == (
        "subscriptions.subscription",
        str(subscription.pk),
    )
    assert notification.status == Notification.Status.SENT
    assert notification.created_at == midnight(date(2026, 12, 16))
    assert notification.sent_at == midnight(date(2026, 12, 16))

    # The renewal happens; the next notice is a year away.
    advance_to(date(2027, 1, 20))
    subscription.refresh_from_db()
    assert subscription.billed_through == date(2028, 1, 15)
    assert len(mail.outbox) == 1


def test_a_quarterly_subscription_is_told_7_days_before(
    make_plan: Any, customer: Any, set_today: Any, advance_to: Any
) -> None:
    subscription = subscribe(customer, make_plan("quarterly", "30.00", interval="quarter"))
    set_today(date(2026, 4, 6))

    advance_to(date(2026, 4, 7))
    assert mail.outbox == []
    advance_to(date(2026, 4, 8))

    assert subjects() == ["Your Quarterly subscription renews on April 15, 2026"]
    assert "On that day we will charge 30.00 USD." in mail.outbox[0].body
    assert Notification.objects.get().dedupe_key == f"renewal_notice:{subscription.pk}:2026-04-15"


def test_a_monthly_subscription_gets_no_renewal_notice(
    make_plan: Any, customer: Any, advance_to: Any
) -> None:
    subscription = subscribe(customer, make_plan("monthly", "30.00"))

    advance_to(date(2026, 3, 20))

    subscription.refresh_from_db()
    assert subscription.billed_through == date(2026, 4, 15)  # it did renew, twice
    assert mail.outbox == []
    assert not Notification.objects.exists()


def test_the_days_come_from_the_settings_and_from_the_plan(
    make_plan: Any, make_customer: Any, set_today: Any, settings: Any
) -> None:
    settings.RENEWAL_NOTICE_DAYS = {**settings.RENEWAL_NOTICE_DAYS, "month": 3}
    monthly = subscribe(make_customer(), make_plan("monthly", "30.00"))
    five = subscribe(
        make_customer(),
        make_plan("five-days", "30.00", metadata={"renewal_notice_days": 5}),
    )
    silent = subscribe(make_customer(), annual(make_plan, metadata={"renewal_notice_days": 0}))

    sent_by_day = {}
    for day in range(9, 14):
        set_today(date(2026, 2, day))
        sent_by_day[day] = notices_process_day(date(2026, 2, day))

    assert sent_by_day == {
        9: {},
        10: {"renewal_notices": 1},
        11: {},
        12: {"renewal_notices": 1},
        13: {},
    }
    assert list(Notification.objects.order_by("id").values_list("dedupe_key", flat=True)) == [
        f"renewal_notice:{five.pk}:2026-02-15",
        f"renewal_notice:{monthly.pk}:2026-02-15",
    ]
    set_today(date(2026, 12, 31))
    assert notices_process_day(date(2026, 12, 31)) == {}
    assert not Notification.objects.filter(related_id=str(silent.pk)).exists()


def test_a_six_month_interval_counts_as_a_quarter_and_two_years_as_a_year(
    product: Any, default_list: Any, make_customer: Any, set_today: Any
) -> None:
    half = catalog.plan_create(
        product=product,
        code="half-year",
        name="Half year",
        billing_interval="month",
        interval_count=6,
        phases=[evergreen("60.00")],
        actor=STAFF,
    )
    biennial = catalog.plan_create(
        product=product,
        code="biennial",
        name="Two years",
        billing_interval="year",
        interval_count=2,
        phases=[evergreen("200.00")],
        actor=STAFF,
    )
    subscribe(make_customer(), half)
    subscribe(make_customer(), biennial)

    set_today(date(2026, 7, 8))
    assert notices_process_day(date(2026, 7, 7)) == {}
    assert notices_process_day(date(2026, 7, 8)) == {"renewal_notices": 1}
    set_today(date(2027, 12, 16))
    assert notices_process_day(date(2027, 12, 15)) == {}
    assert notices_process_day(date(2027, 12, 16)) == {"renewal_notices": 1}
    assert subjects() == [
        "Your Half year subscription renews on July 15, 2026",
        "Your Two years subscription renews on January 15, 2028",
    ]


@pytest.mark.parametrize(
    ("currency", "amount", "shown"),
    [("JPY", "12000", "12000 JPY"), ("KWD", "30.5", "30.500 KWD"), ("USD", "99.9", "99.90 USD")],
)
def test_the_amount_has_the_currencys_decimals(
    product: Any,
    default_list: Any,
    make_customer: Any,
    set_today: Any,
    currency: str,
    amount: str,
    shown: str,
) -> None:
    plan = catalog.plan_create(
        product=product,
        code=f"annual-{currency.lower()}",
        name="Annual",
        billing_interval="year",
        phases=[evergreen(amount, currency=currency)],
        actor=STAFF,
    )
    subscribe(make_customer(currency=currency), plan)
    set_today(date(2026, 12, 16))

    notices_process_day(date(2026, 12, 16))

    assert f"On that day we will charge {shown}." in mail.outbox[0].body
    assert f"<strong>{shown}</strong>" in mail.outbox[0].alternatives[0][0]  # type: ignore[attr-defined]


def test_add_ons_renew_with_their_base_in_one_notice(
    make_plan: Any, addon_product: Any, customer: Any, set_today: Any
) -> None:
    puzzles = make_plan("puzzles", "12.00", interval="year", for_product=addon_product)
    base = subscribe(customer, annual(make_plan, addons=[puzzles]))
    addon = subscribe(customer, puzzles, parent=base)
    set_today(date(2026, 12, 16))

    assert notices_process_day(date(2026, 12, 16)) == {"renewal_notices": 1}

    (message,) = mail.outbox
    assert "On that day we will charge 132.00 USD (with Puzzles)." in message.body
    assert Notification.objects.get().related_id == str(base.pk)
    assert not Notification.objects.filter(related_id=str(addon.pk)).exists()


def test_cancel_at_period_end_means_no_renewal_notice_until_undone(
    make_plan: Any, customer: Any, set_today: Any, advance_to: Any
) -> None:
    subscription = subscribe(customer, annual(make_plan))
    subscription_cancel(subscription=subscription, actor=STAFF)
    set_today(date(2026, 12, 14))

    advance_to(date(2026, 12, 18))
    assert mail.outbox == []

    subscription_undo_cancel(subscription=subscription, actor=STAFF)
    advance_to(date(2026, 12, 19))

    # Late but before the renewal: the notice catches up.
    assert subjects() == ["Your Annual News subscription renews on January 15, 2027"]
    assert Notification.objects.get().created_at == midnight(date(2026, 12, 19))


def test_an_ended_subscription_gets_nothing(make_plan: Any, customer: Any, set_today: Any) -> None:
    subscription = subscribe(customer, annual(make_plan))
    subscription_cancel(subscription=subscription, actor=STAFF, policy="immediate")
    set_today(date(2026, 12, 16))

    assert notices_process_day(date(2026, 12, 16)) == {}
    assert mail.outbox == []


def test_a_pause_at_the_period_end_means_no_renewal_notice(
    make_plan: Any, customer: Any, set_today: Any
) -> None:
    subscription = subscribe(customer, annual(make_plan))
    subscription_pause(subscription=subscription, actor=STAFF, when=PauseWhen.PERIOD_END, cycles=1)
    set_today(date(2026, 12, 16))

    assert notices_process_day(date(2026, 12, 16)) == {}
    assert mail.outbox == []


def test_a_renewing_fixed_term_is_announced_before_the_term_ends(
    make_plan: Any, make_customer: Any, set_today: Any, advance_to: Any
) -> None:
    plan = make_plan("term", phases=[fixed_term("20.00", 3, renews=True)], name="Term Plan")
    # Billed on the 1st: the term (Jan 15 + 3 months) ends between two billing days.
    subscription = subscribe(make_customer(billing_day=1), plan)

    advance_to(date(2026, 4, 7))
    assert mail.outbox == []
    advance_to(date(2026, 4, 8))

    (message,) = mail.outbox
    assert message.subject == "Your Term Plan subscription renews on April 15, 2026"
    assert (
        "renews on April 15, 2026 for another term of 3 months. You will go on paying "
        "20.00 USD per month; the next charge is on May 1, 2026." in message.body
    )
    assert Notification.objects.get().dedupe_key == f"renewal_notice:{subscription.pk}:2026-04-15"


def test_a_fixed_term_that_does_not_renew_gets_no_renewal_notice(
    make_plan: Any, customer: Any, set_today: Any, advance_to: Any
) -> None:
    plan = make_plan("contract", interval="year", phases=[fixed_term("240.00", 12)])
    subscription = subscribe(customer, plan)
    set_today(date(2026, 12, 14))

    advance_to(date(2027, 1, 16))

    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.CANCELED
    assert mail.outbox == []


# --- once, on the right day -------------------------------------------------------------------


def test_running_the_day_twice_sends_once(make_plan: Any, customer: Any, set_today: Any) -> None:
    subscribe(customer, annual(make_plan))
    set_today(date(2026, 12, 16))

    first = notices_process_day(date(2026, 12, 16))
    second = notices_process_day(date(2026, 12, 16))
    third = notices_send_today()  # the scheduled task, the same day

    assert first == {"renewal_notices": 1}
    assert second == {}
    assert third == {}
    assert len(mail.outbox) == 1
    assert Notification.objects.count() == 1


def test_a_late_run_still_notifies_but_never_on_or_after_the_renewal(
    make_plan: Any, make_customer: Any, set_today: Any
) -> None:
    late = subscribe(make_customer(), annual(make_plan))
    set_today(date(2027, 1, 10))

    assert notices_process_day(date(2027, 1, 10)) == {"renewal_notices": 1}
    assert Notification.objects.get().related_id == str(late.pk)

    Notification.objects.all().delete()
    mail.outbox.clear()
    set_today(date(2027, 1, 15))
    assert notices_process_day(date(2027, 1, 15)) == {}
    assert mail.outbox == []


@pytest.mark.django_db(transaction=True)
def test_two_runs_at_the_same_moment_send_one_email(
    make_plan: Any, customer: Any, set_today: Any
) -> None:
    subscribe(customer, annual(make_plan))
    set_today(date(2026, 12, 16))
    barrier = threading.Barrier(2)
    results: list[dict[str, int]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(notices_process_day(date(2026, 12, 16)))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sorted(results, key=len) == [{}, {"renewal_notices": 1}]
    assert len(mail.outbox) == 1
    assert Notification.objects.count() == 1


def test_the_test_clock_api_sends_them_as_it_crosses_the_days(
    api: Any, make_plan: Any, customer: Any, set_today: Any
) -> None:
    subscribe(customer, annual(make_plan))
    set_today(date(2026, 12, 14))

    response = api.post("/api/v1/test_clock/advance", {"to": "2026-12-20T00:00:00Z"}, format="json")

    assert response.status_code == 200, response.json()
    assert notices_reported(response.json()) == [("2026-12-16", {"renewal_notices": 1})]
    assert subjects() == ["Your Annual News subscription renews on January 15, 2027"]
    listed = api.get("/api/v1/notifications?kind=renewal_notice").json()["results"]
    assert [(n["recipient"], n["status"], n["created_at"]) for n in listed] == [
        (customer.email, "sent", "2026-12-16T00:00:00Z")
    ]


def test_the_notices_run_after_the_lifecycle_each_day() -> None:
    names = list(platform_clock.daily_work())

    assert names.index("subscriptions") < names.index("subscription_notices")
    assert platform_clock.daily_work()["subscription_notices"] is notices_process_day


# --- trial-ending notices ---------------------------------------------------------------------


def test_a_trial_ending_notice_goes_out_3_days_before_the_trial_ends(
    make_plan: Any, customer: Any, advance_to: Any
) -> None:
    plan = make_plan("trial-monthly", phases=[trial(14), evergreen("30.00")])
    subscription = subscribe(customer, plan)

    advance_to(date(2026, 1, 25))
    assert mail.outbox == []
    advance_to(date(2026, 1, 26))

    (message,) = mail.outbox
    assert message.to == [customer.email]
    assert message.subject == "Your Trial Monthly trial ends on January 29, 2026"
    assert "on January 29, 2026 we will charge 30.00 USD for your first month." in message.body
    assert PORTAL in message.body
    notification = Notification.objects.get()
    assert notification.kind == "trial_ending"
    assert notification.dedupe_key == f"trial_ending:{subscription.pk}:2026-01-29"
    (announced,) = OutboxEvent.objects.filter(type="subscription.trial_will_end")
    assert (announced.customer_id, announced.payload["id"]) == (customer.pk, subscription.pk)

    # The trial converts; a monthly plan has no renewal notice.
    advance_to(date(2026, 3, 1))
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.ACTIVE
    assert len(mail.outbox) == 1
    assert OutboxEvent.objects.filter(type="subscription.trial_will_end").count() == 1


@pytest.mark.parametrize(
    ("trial_days", "long_trial_days", "notice_on"),
    [
        (31, 7, date(2026, 2, 12)),  # ends Feb 15: 3 days before
        (32, 7, date(2026, 2, 9)),  # ends Feb 16: a long trial, 7 days before
        (60, 7, date(2026, 3, 9)),  # ends Mar 16
        (60, 21, date(2026, 2, 23)),  # LONG_TRIAL_NOTICE_DAYS=21
    ],
)
def test_long_trials_get_their_notice_earlier(
    make_plan: Any,
    customer: Any,
    set_today: Any,
    settings: Any,
    trial_days: int,
    long_trial_days: int,
    notice_on: date,
) -> None:
    settings.LONG_TRIAL_NOTICE_DAYS = long_trial_days
    plan = make_plan("trial-plan", phases=[trial(trial_days), evergreen("30.00")])
    subscribe(customer, plan)
    before = notice_on.toordinal() - 1

    set_today(notice_on)
    assert notices_process_day(date.fromordinal(before)) == {}
    assert notices_process_day(notice_on) == {"trial_ending_notices": 1}
    assert len(mail.outbox) == 1


def test_a_trial_shorter_than_its_notice_is_told_at_once(
    make_plan: Any, customer: Any, advance_to: Any
) -> None:
    subscribe(customer, make_plan("short", phases=[trial(2), evergreen("30.00")]))

    report = advance_to(date(2026, 1, 16))

    assert notices_reported(report) == [("2026-01-16", {"trial_ending_notices": 1})]
    assert subjects() == ["Your Short trial ends on January 17, 2026"]


def test_a_plan_can_set_its_trial_notice(make_plan: Any, customer: Any, set_today: Any) -> None:
    plan = make_plan(
        "trial-plan",
        phases=[trial(30), evergreen("30.00")],
        metadata={"trial_ending_notice_days": 10},
    )
    subscribe(customer, plan)
    set_today(date(2026, 2, 4))

    assert notices_process_day(date(2026, 2, 3)) == {}
    assert notices_process_day(date(2026, 2, 4)) == {"trial_ending_notices": 1}


def test_a_trial_canceled_at_its_end_gets_no_notice(
    make_plan: Any, customer: Any, advance_to: Any
) -> None:
    plan = make_plan("trial-monthly", phases=[trial(14), evergreen("30.00")])
    subscription = subscribe(customer, plan)
    subscription_cancel(subscription=subscription, actor=STAFF)

    advance_to(date(2026, 2, 1))

    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.CANCELED
    assert mail.outbox == []


# --- price-change notices ---------------------------------------------------------------------


def test_the_end_of_an_intro_price_is_announced_30_days_before_the_renewal_that_bills_it(
    make_plan: Any, customer: Any, advance_to: Any
) -> None:
    plan = make_plan("intro", phases=[intro("10.00", 3), evergreen("30.00")], name="Intro Plan")
    subscription = subscribe(customer, plan)

    advance_to(date(2026, 3, 15))
    assert mail.outbox == []
    report = advance_to(date(2026, 3, 16))

    assert notices_reported(report) == [("2026-03-16", {"price_change_notices": 1})]
    (message,) = mail.outbox
    assert message.subject == "Your Intro Plan price changes on April 15, 2026"
    assert "Your introductory price ends on April 15, 2026." in message.body
    assert "Now: Intro Plan, 10.00 USD per month" in message.body
    assert "From April 15, 2026: Intro Plan, 30.00 USD per month" in message.body
    assert "Your invoice on April 15, 2026 comes to 30.00 USD" in message.body
    notification = Notification.objects.get()
    assert notification.kind == "price_change"
    assert notification.dedupe_key == f"price_change:{subscription.pk}:2026-04-15"

    advance_to(date(2026, 5, 1))
    assert len(mail.outbox) == 1


def test_a_downgrade_at_the_period_end_is_announced_with_the_new_price(
    make_plan: Any, customer: Any, set_today: Any
) -> None:
    gold = make_plan("gold", "240.00", interval="year", tier_rank=2)
    silver = make_plan("silver", "120.00", interval="year", tier_rank=1)
    subscription = subscribe(customer, gold)
    subscription_change_plan(subscription=subscription, plan=silver, actor=STAFF)
    set_today(date(2026, 12, 16))

    assert notices_process_day(date(2026, 12, 15)) == {}
    result = notices_process_day(date(2026, 12, 16))

    assert result == {"price_change_notices": 1, "renewal_notices": 1}
    assert sorted(subjects()) == [
        "Your Gold price changes on January 15, 2027",
        "Your Gold subscription renews on January 15, 2027",
    ]
    renewal = next(m for m in mail.outbox if "renews" in m.subject)
    price = next(m for m in mail.outbox if "price" in m.subject)
    assert "On that day we will charge 120.00 USD." in renewal.body
    assert "Your change to Silver takes effect on January 15, 2027." in price.body
    assert "Now: Gold, 240.00 USD per year" in price.body
    assert "From January 15, 2027: Silver, 120.00 USD per year" in price.body


def test_a_new_catalog_price_does_not_reach_a_subscriber_without_a_change(
    make_plan: Any, customer: Any, set_today: Any
) -> None:
    plan = annual(make_plan)
    subscribe(customer, plan)
    catalog.price_create(
        phase=plan.phases.get(),
        currency="USD",
        amount=Decimal("150.00"),
        effective_from=date(2026, 6, 1),
        actor=STAFF,
    )
    set_today(date(2026, 12, 16))

    assert notices_process_day(date(2026, 12, 16)) == {"renewal_notices": 1}
    assert "On that day we will charge 120.00 USD." in mail.outbox[0].body
    assert not Notification.objects.filter(kind="price_change").exists()


def test_a_price_change_is_not_announced_for_a_subscription_canceling_at_period_end(
    make_plan: Any, customer: Any, set_today: Any
) -> None:
    gold = make_plan("gold", "240.00", interval="year", tier_rank=2)
    silver = make_plan("silver", "120.00", interval="year", tier_rank=1)
    subscription = subscribe(customer, gold)
    subscription_change_plan(subscription=subscription, plan=silver, actor=STAFF)
    subscription_cancel(subscription=subscription, actor=STAFF)
    set_today(date(2026, 12, 16))

    assert notices_process_day(date(2026, 12, 16)) == {}
    assert mail.outbox == []
