"""The apps emit their webhook events through the outbox, in the transaction of the change.

Each event is checked through the service that causes it: exactly one event of its type, the
right customer, a payload equal to what the API shows for the resource right after the change,
a delivery for a subscribed endpoint, none for an endpoint listening to something else, and
nothing at all when the change rolls back.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from rest_framework import serializers

from api.serializers.billing import CreditNoteSerializer, InvoiceSerializer
from api.serializers.customers import CustomerSerializer
from api.serializers.payments import PaymentAttemptSerializer, PaymentSerializer, RefundSerializer
from api.serializers.subscriptions import SubscriptionSerializer
from billing.models import CreditNote, Invoice, Payment, PaymentAttempt, Refund
from billing.services import (
    credit_note_create,
    customer_balance_adjust,
    invoice_create,
    invoice_void,
    payment_method_attach,
    payment_record_offline,
    refund_create,
)
from billing.services.invoices import LineSpec
from catalog import services as catalog
from catalog.models import Plan, PriceList
from core import services as core_services
from core.webhooks.events import EventType
from core.webhooks.models import OutboxEvent, WebhookDelivery, WebhookEndpoint
from customers.models import Customer
from customers.services import customer_update
from subscriptions.models import Subscription
from subscriptions.services import (
    subscription_cancel,
    subscription_change_plan,
    subscription_create,
    subscription_pause,
    subscription_resume,
    subscription_undo_cancel,
)
from tests.subscriptions.conftest import evergreen, midnight
from tests.webhooks.conftest import STAFF

VISA = "4242424242424242"
GENERIC_DECLINE = "4000000000000002"


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _simulated_gateway(settings: Any) -> None:
    settings.PAYMENT_GATEWAY = "simulated"


@pytest.fixture
def customer(make_customer: Callable[..., Customer]) -> Customer:
    return make_customer(currency="USD", autocharge=False)


@pytest.fixture
def plans(clock: Any) -> dict[str, Plan]:
    catalog.price_list_create(
        code="default", name="Default", kind=PriceList.Kind.DEFAULT, actor=STAFF
    )
    product = catalog.product_create(code="news", name="The Daily News", actor=STAFF)

    def plan(code: str, amount: str) -> Plan:
        return catalog.plan_create(
            product=product,
            code=code,
            name=code.title(),
            billing_interval="month",
            phases=[evergreen(amount)],
            actor=STAFF,
        )

    return {"silver": plan("silver", "10.00"), "gold": plan("gold", "30.00")}


@pytest.fixture
def endpoint(make_endpoint: Callable[..., WebhookEndpoint]) -> WebhookEndpoint:
    """Subscribed to everything."""
    return make_endpoint(enabled_events=["*"])


@pytest.fixture
def elsewhere(make_endpoint: Callable[..., WebhookEndpoint]) -> WebhookEndpoint:
    """Subscribed only to an event none of these tests cause."""
    return make_endpoint(enabled_events=["dunning.final_action"])


@pytest.fixture
def watch() -> Callable[[], list[OutboxEvent]]:
    """`events()`: the events emitted since the fixture was set up, oldest first."""
    last = OutboxEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0

    def events() -> list[OutboxEvent]:
        return list(OutboxEvent.objects.filter(id__gt=last).order_by("id"))

    return events


def api_shape(serializer: serializers.BaseSerializer[Any]) -> dict[str, Any]:
    """The API's representation as JSON carries it."""
    shaped: dict[str, Any] = json.loads(json.dumps(serializer.data, cls=DjangoJSONEncoder))
    return shaped


def one(events: list[OutboxEvent], type_: str) -> OutboxEvent:
    found = [event for event in events if event.type == type_]
    assert len(found) == 1, [event.type for event in events]
    return found[0]


def delivered_to(event: OutboxEvent) -> set[int]:
    return set(WebhookDelivery.objects.filter(event=event).values_list("endpoint_id", flat=True))


def item(description: str = "Consulting", amount: str = "40.00") -> LineSpec:
    return LineSpec(kind="one_off", description=description, unit_amount=Decimal(amount))


# --- customers ----------------------------------------------------------------------------------


def test_customer_created_carries_the_customer_as_the_api_shows_it(
    make_customer: Callable[..., Customer],
    endpoint: WebhookEndpoint,
    elsewhere: WebhookEndpoint,
    watch: Callable[[], list[OutboxEvent]],
) -> None:
    # when
    customer = make_customer(name="Ada", country="GB", segments=["vip"], metadata={"crm": "7"})

    # then
    events = watch()
    assert [e.type for e in events] == [EventType.CUSTOMER_CREATED]
    event = events[0]
    assert event.customer_id == customer.pk
    assert event.payload == api_shape(CustomerSerializer(Customer.objects.get(pk=customer.pk)))
    assert event.payload["country"] == "GB"
    assert event.payload["region"] is None  # blank shown as null, like the API
    assert delivered_to(event) == {endpoint.pk}


def test_customer_updated_only_when_something_changed(
    customer: Customer, endpoint: WebhookEndpoint, watch: Callable[[], list[OutboxEvent]]
) -> None:
    # when
    customer_update(customer=customer, actor=STAFF, name=customer.name)  # no change
    updated = customer_update(customer=customer, actor=STAFF, name="Grace Hopper")

    # then
    events = watch()
    assert [e.type for e in events] == [EventType.CUSTOMER_UPDATED]
    assert events[0].customer_id == customer.pk
    assert events[0].payload == api_shape(CustomerSerializer(updated))
    assert events[0].payload["name"] == "Grace Hopper"
    assert delivered_to(events[0]) == {endpoint.pk}


def test_a_rolled_back_change_leaves_no_event(
    customer: Customer, endpoint: WebhookEndpoint, watch: Callable[[], list[OutboxEvent]]
) -> None:
    # when
    def change_then_fail() -> None:
        with transaction.atomic():
            customer_update(customer=customer, actor=STAFF, name="Never")
            assert [e.type for e in watch()] == [EventType.CUSTOMER_UPDATED]
            raise RuntimeError("the caller fails after the change")

    with pytest.raises(RuntimeError, match="fails after the change"):
        change_then_fail()

    # then
    assert watch() == []
    assert not WebhookDelivery.objects.filter(endpoint=endpoint).exists()
    assert Customer.objects.get(pk=customer.pk).name != "Never"


def test_emitting_costs_one_insert_and_one_for_the_deliveries(
    customer: Customer, make_endpoint: Callable[..., WebhookEndpoint]
) -> None:
    # given no endpoint at all
    with CaptureQueriesContext(connection) as without:
        customer_update(customer=customer, actor=STAFF, name="First")
    make_endpoint(enabled_events=["customer.updated"])
    make_endpoint(enabled_events=["customer.*"])

    # when two endpoints listen
    with CaptureQueriesContext(connection) as with_two:
        customer_update(customer=customer, actor=STAFF, name="Second")

    # then
    def touching(queries: CaptureQueriesContext, table: str) -> list[str]:
        return [q["sql"] for q in queries.captured_queries if table in q["sql"]]

    assert [sql.split()[0] for sql in touching(without, '"webhooks_outboxevent"')] == ["INSERT"]
    assert touching(without, '"webhooks_webhookdelivery"') == []
    assert [sql.split()[0] for sql in touching(with_two, '"webhooks_outboxevent"')] == ["INSERT"]
    deliveries = touching(with_two, '"webhooks_webhookdelivery"')
    assert [sql.split()[0] for sql in deliveries] == ["INSERT"]  # one bulk INSERT for both
    assert WebhookDelivery.objects.count() == 2


# --- subscriptions ------------------------------------------------------------------------------


def test_subscription_created(
    customer: Customer,
    plans: dict[str, Plan],
    endpoint: WebhookEndpoint,
    elsewhere: WebhookEndpoint,
    watch: Callable[[], list[OutboxEvent]],
) -> None:
    # when
    result = subscription_create(customer=customer, plan=plans["silver"], actor=STAFF)

    # then: the subscription after its first period was billed (not half-made)
    events = watch()
    event = one(events, EventType.SUBSCRIPTION_CREATED)
    assert [e.type for e in events if e.type.startswith("subscription.")] == [
        EventType.SUBSCRIPTION_CREATED
    ]
    assert event.customer_id == customer.pk
    subscription = Subscription.objects.get(pk=result.subscription.pk)
    assert event.payload == api_shape(SubscriptionSerializer(subscription))
    assert event.payload["current_period_start"] == "2026-01-15"
    assert event.payload["next_transition_on"] == "2026-02-15"
    assert delivered_to(event) == {endpoint.pk}
    # its first invoice is announced too
    finalized = one(events, EventType.INVOICE_FINALIZED)
    assert finalized.payload["total"] == "10.00"


def test_subscription_cancel_scheduled_and_undone_are_updates(
    customer: Customer,
    plans: dict[str, Plan],
    endpoint: WebhookEndpoint,
    watch: Callable[[], list[OutboxEvent]],
) -> None:
    # given
    subscription = subscription_create(
        customer=customer, plan=plans["silver"], actor=STAFF
    ).subscription
    start = watch()

    # when
    subscription_cancel(subscription=subscription, actor=STAFF, reason="too expensive")
    scheduled = Subscription.objects.get(pk=subscription.pk)
    subscription_undo_cancel(subscription=subscription, actor=STAFF)

    # then
    events = [e for e in watch() if e not in start]
    assert [e.type for e in events] == [EventType.SUBSCRIPTION_UPDATED] * 2
    assert events[0].payload == api_shape(SubscriptionSerializer(scheduled))
    assert events[0].payload["cancel_at_period_end"] is True
    assert events[1].payload == api_shape(
        SubscriptionSerializer(Subscription.objects.get(pk=subscription.pk))
    )
    assert events[1].payload["cancel_at_period_end"] is False
    assert all(delivered_to(e) == {endpoint.pk} for e in events)


def test_subscription_plan_change_is_an_update(
    customer: Customer, plans: dict[str, Plan], watch: Callable[[], list[OutboxEvent]]
) -> None:
    # given
    subscription = subscription_create(
        customer=customer, plan=plans["silver"], actor=STAFF
    ).subscription
    start = watch()

    # when: an upgrade, immediate
    subscription_change_plan(subscription=subscription, plan=plans["gold"], actor=STAFF)

    # then
    events = [e for e in watch() if e not in start]
    event = one(events, EventType.SUBSCRIPTION_UPDATED)
    assert event.payload["plan"] == "gold"
    assert event.payload == api_shape(
        SubscriptionSerializer(Subscription.objects.get(pk=subscription.pk))
    )
    assert [e.type for e in events if e.type.startswith("subscription.")] == [
        EventType.SUBSCRIPTION_UPDATED
    ]


def test_subscription_paused_resumed_and_canceled(
    customer: Customer,
    plans: dict[str, Plan],
    endpoint: WebhookEndpoint,
    watch: Callable[[], list[OutboxEvent]],
) -> None:
    # given
    subscription = subscription_create(
        customer=customer, plan=plans["silver"], actor=STAFF
    ).subscription

    # when
    subscription_pause(subscription=subscription, actor=STAFF)
    paused = Subscription.objects.get(pk=subscription.pk)
    subscription_resume(subscription=subscription, actor=STAFF)
    resumed = Subscription.objects.get(pk=subscription.pk)
    subscription_cancel(subscription=subscription, actor=STAFF, policy="immediate")
    canceled = Subscription.objects.get(pk=subscription.pk)

    # then
    events = watch()
    assert [e.type for e in events if e.type.startswith("subscription.")] == [
        EventType.SUBSCRIPTION_CREATED,
        EventType.SUBSCRIPTION_PAUSED,
        EventType.SUBSCRIPTION_RESUMED,
        EventType.SUBSCRIPTION_CANCELED,
    ]
    for type_, state in (
        (EventType.SUBSCRIPTION_PAUSED, paused),
        (EventType.SUBSCRIPTION_RESUMED, resumed),
        (EventType.SUBSCRIPTION_CANCELED, canceled),
    ):
        event = one(events, type_)
        assert event.customer_id == customer.pk
        assert event.payload == api_shape(SubscriptionSerializer(state))
        assert delivered_to(event) == {endpoint.pk}
    assert one(events, EventType.SUBSCRIPTION_PAUSED).payload["status"] == "paused"
    assert one(events, EventType.SUBSCRIPTION_CANCELED).payload["ended_on"] == "2026-01-15"


def test_subscription_renewed_by_the_daily_work(
    customer: Customer,
    plans: dict[str, Plan],
    endpoint: WebhookEndpoint,
    watch: Callable[[], list[OutboxEvent]],
) -> None:
    # given
    subscription = subscription_create(
        customer=customer, plan=plans["silver"], actor=STAFF
    ).subscription
    start = watch()

    # when: the clock crosses the period end
    core_services.test_clock_advance(to=midnight(date(2026, 2, 16)), actor=STAFF)

    # then
    events = [e for e in watch() if e not in start]
    assert [e.type for e in events if e.type.startswith("subscription.")] == [
        EventType.SUBSCRIPTION_RENEWED
    ]
    renewed = one(events, EventType.SUBSCRIPTION_RENEWED)
    assert renewed.customer_id == customer.pk
    assert renewed.payload == api_shape(
        SubscriptionSerializer(Subscription.objects.get(pk=subscription.pk))
    )
    assert renewed.payload["current_period_start"] == "2026-02-15"
    assert renewed.payload["current_period_end"] == "2026-03-15"
    assert delivered_to(renewed) == {endpoint.pk}
    assert one(events, EventType.INVOICE_FINALIZED).payload["billing_reason"] == (
        "subscription_cycle"
    )


def test_a_day_with_nothing_due_emits_nothing(
    customer: Customer, plans: dict[str, Plan], watch: Callable[[], list[OutboxEvent]]
) -> None:
    # given
    subscription_create(customer=customer, plan=plans["silver"], actor=STAFF)
    start = watch()

    # when
    core_services.test_clock_advance(to=midnight(date(2026, 2, 10)), actor=STAFF)

    # then
    assert [e for e in watch() if e not in start] == []


# --- billing ------------------------------------------------------------------------------------


def test_invoice_finalized(
    customer: Customer,
    endpoint: WebhookEndpoint,
    elsewhere: WebhookEndpoint,
    watch: Callable[[], list[OutboxEvent]],
) -> None:
    # when
    invoice = invoice_create(
        customer=customer,
        currency="USD",
        billing_reason=Invoice.BillingReason.MANUAL,
        lines=[item(amount="40.00")],
        actor=STAFF,
    )

    # then: open, so not paid
    events = watch()
    assert [e.type for e in events] == [EventType.INVOICE_FINALIZED]
    assert events[0].customer_id == customer.pk
    assert events[0].payload == api_shape(InvoiceSerializer(Invoice.objects.get(pk=invoice.pk)))
    assert events[0].payload["number"] == "INV-2026-000001"
    assert events[0].payload["amount_due"] == "40.00"
    assert delivered_to(events[0]) == {endpoint.pk}


def test_an_invoice_covered_by_credit_is_finalized_and_paid(
    customer: Customer, watch: Callable[[], list[OutboxEvent]]
) -> None:
    # given
    customer_balance_adjust(
        customer=customer, currency="USD", amount=Decimal("50.00"), kind="adjustment", actor=STAFF
    )

    # when
    invoice = invoice_create(
        customer=customer,
        currency="USD",
        billing_reason=Invoice.BillingReason.MANUAL,
        lines=[item(amount="40.00")],
        actor=STAFF,
    )

    # then
    events = watch()
    assert [e.type for e in events] == [EventType.INVOICE_FINALIZED, EventType.INVOICE_PAID]
    shown = api_shape(InvoiceSerializer(Invoice.objects.get(pk=invoice.pk)))
    assert events[0].payload == events[1].payload == shown
    assert shown["status"] == "paid"
    assert shown["credit_applied"] == "40.00"


def test_an_offline_payment_emits_payment_succeeded_and_then_invoice_paid(
    customer: Customer, endpoint: WebhookEndpoint, watch: Callable[[], list[OutboxEvent]]
) -> None:
    # given
    invoice = invoice_create(
        customer=customer,
        currency="USD",
        billing_reason=Invoice.BillingReason.MANUAL,
        lines=[item(amount="40.00")],
        actor=STAFF,
    )
    start = watch()

    # when: a part, then the rest
    first = payment_record_offline(
        invoice=invoice,
        amount=Decimal("15.00"),
        method="bank_transfer",
        reference="wire 1",
        received_on=date(2026, 1, 15),
        actor=STAFF,
    )
    last = payment_record_offline(
        invoice=invoice,
        amount=Decimal("25.00"),
        method="bank_transfer",
        reference="wire 2",
        received_on=date(2026, 1, 15),
        actor=STAFF,
    )

    # then
    events = [e for e in watch() if e not in start]
    assert [e.type for e in events] == [
        EventType.PAYMENT_SUCCEEDED,
        EventType.PAYMENT_SUCCEEDED,
        EventType.INVOICE_PAID,
    ]
    assert events[0].payload == api_shape(PaymentSerializer(Payment.objects.get(pk=first.pk)))
    assert events[1].payload["id"] == last.pk
    assert events[1].payload["amount"] == "25.00"
    assert events[2].payload == api_shape(InvoiceSerializer(Invoice.objects.get(pk=invoice.pk)))
    assert events[2].payload["amount_due"] == "0.00"
    assert {e.customer_id for e in events} == {customer.pk}
    assert all(delivered_to(e) == {endpoint.pk} for e in events)


def test_a_declined_charge_emits_payment_failed_and_invoice_payment_failed(
    make_customer: Callable[..., Customer],
    endpoint: WebhookEndpoint,
    watch: Callable[[], list[OutboxEvent]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given an autocharge customer whose card is declined at the charge
    customer = make_customer(currency="USD", autocharge=True)
    payment_method_attach(
        customer=customer, card_number=GENERIC_DECLINE, exp_month=12, exp_year=2030, actor=STAFF
    )
    start = watch()

    # when
    with django_capture_on_commit_callbacks(execute=True):
        invoice = invoice_create(
            customer=customer,
            currency="USD",
            billing_reason=Invoice.BillingReason.MANUAL,
            lines=[item(amount="40.00")],
            actor=STAFF,
        )

    # then
    events = [e for e in watch() if e not in start]
    assert [e.type for e in events] == [
        EventType.INVOICE_FINALIZED,
        EventType.PAYMENT_FAILED,
        EventType.INVOICE_PAYMENT_FAILED,
    ]
    attempt = PaymentAttempt.objects.get(invoice=invoice)
    assert attempt.status == PaymentAttempt.Status.DECLINED
    assert events[1].payload == api_shape(PaymentAttemptSerializer(attempt))
    assert events[1].payload["decline_code"] == "generic_decline"
    assert events[2].payload == api_shape(InvoiceSerializer(Invoice.objects.get(pk=invoice.pk)))
    assert events[2].payload["status"] == "open"
    assert not Payment.objects.filter(invoice=invoice).exists()
    assert {e.customer_id for e in events} == {customer.pk}
    assert all(delivered_to(e) == {endpoint.pk} for e in events)


def test_a_successful_charge_emits_payment_succeeded_and_invoice_paid(
    make_customer: Callable[..., Customer],
    watch: Callable[[], list[OutboxEvent]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given
    customer = make_customer(currency="USD", autocharge=True)
    payment_method_attach(
        customer=customer, card_number=VISA, exp_month=12, exp_year=2030, actor=STAFF
    )
    start = watch()

    # when
    with django_capture_on_commit_callbacks(execute=True):
        invoice = invoice_create(
            customer=customer,
            currency="USD",
            billing_reason=Invoice.BillingReason.MANUAL,
            lines=[item(amount="40.00")],
            actor=STAFF,
        )

    # then
    events = [e for e in watch() if e not in start]
    assert [e.type for e in events] == [
        EventType.INVOICE_FINALIZED,
        EventType.PAYMENT_SUCCEEDED,
        EventType.INVOICE_PAID,
    ]
    payment = Payment.objects.get(invoice=invoice)
    assert events[1].payload == api_shape(PaymentSerializer(payment))
    assert events[1].payload["method"] == "card"
    assert events[2].payload == api_shape(InvoiceSerializer(Invoice.objects.get(pk=invoice.pk)))


def test_invoice_voided(
    customer: Customer, endpoint: WebhookEndpoint, watch: Callable[[], list[OutboxEvent]]
) -> None:
    # given
    invoice = invoice_create(
        customer=customer,
        currency="USD",
        billing_reason=Invoice.BillingReason.MANUAL,
        lines=[item(amount="40.00")],
        actor=STAFF,
    )
    start = watch()

    # when
    invoice_void(invoice=invoice, actor=STAFF)

    # then
    events = [e for e in watch() if e not in start]
    assert [e.type for e in events] == [EventType.INVOICE_VOIDED]
    assert events[0].payload == api_shape(InvoiceSerializer(Invoice.objects.get(pk=invoice.pk)))
    assert events[0].payload["status"] == "void"
    assert delivered_to(events[0]) == {endpoint.pk}


def test_credit_note_created_and_the_invoice_it_settles_paid(
    customer: Customer, endpoint: WebhookEndpoint, watch: Callable[[], list[OutboxEvent]]
) -> None:
    # given
    invoice = invoice_create(
        customer=customer,
        currency="USD",
        billing_reason=Invoice.BillingReason.MANUAL,
        lines=[item(amount="40.00")],
        actor=STAFF,
    )
    start = watch()

    # when: a part off what is due, then the rest
    partial = credit_note_create(
        invoice=invoice, actor=STAFF, outcome="reduce_amount_due", amount=Decimal("10.00")
    )
    rest = credit_note_create(invoice=invoice, actor=STAFF, outcome="reduce_amount_due")

    # then
    events = [e for e in watch() if e not in start]
    assert [e.type for e in events] == [
        EventType.CREDIT_NOTE_CREATED,
        EventType.CREDIT_NOTE_CREATED,
        EventType.INVOICE_PAID,
    ]
    assert events[0].payload == api_shape(
        CreditNoteSerializer(CreditNote.objects.get(pk=partial.pk))
    )
    assert events[1].payload["id"] == rest.pk
    assert events[1].payload["total"] == "30.00"
    assert events[2].payload["status"] == "paid"
    assert events[2].payload["credited_total"] == "40.00"
    assert all(delivered_to(e) == {endpoint.pk} for e in events)


def test_refund_created(
    customer: Customer, endpoint: WebhookEndpoint, watch: Callable[[], list[OutboxEvent]]
) -> None:
    # given a paid invoice (offline)
    invoice = invoice_create(
        customer=customer,
        currency="USD",
        billing_reason=Invoice.BillingReason.MANUAL,
        lines=[item(amount="40.00")],
        actor=STAFF,
    )
    payment = payment_record_offline(
        invoice=invoice,
        amount=Decimal("40.00"),
        method="bank_transfer",
        reference="wire",
        received_on=date(2026, 1, 15),
        actor=STAFF,
    )
    start = watch()

    # when
    refund = refund_create(payment=payment, actor=STAFF, amount=Decimal("12.50"))

    # then
    events = [e for e in watch() if e not in start]
    assert [e.type for e in events] == [EventType.REFUND_CREATED]
    assert events[0].customer_id == customer.pk
    assert events[0].payload == api_shape(RefundSerializer(Refund.objects.get(pk=refund.pk)))
    assert events[0].payload["amount"] == "12.50"
    assert events[0].payload["status"] == "succeeded"  # an offline payment is refunded offline
    assert delivered_to(events[0]) == {endpoint.pk}


def test_a_failing_billing_change_rolls_its_events_back(
    customer: Customer, watch: Callable[[], list[OutboxEvent]]
) -> None:
    # given
    invoice = invoice_create(
        customer=customer,
        currency="USD",
        billing_reason=Invoice.BillingReason.MANUAL,
        lines=[item(amount="40.00")],
        actor=STAFF,
    )
    start = watch()

    # when
    def void_then_fail() -> None:
        with transaction.atomic():
            invoice_void(invoice=invoice, actor=STAFF)
            assert [e.type for e in watch() if e not in start] == [EventType.INVOICE_VOIDED]
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError, match="rolled back"):
        void_then_fail()

    # then
    assert [e for e in watch() if e not in start] == []
    assert Invoice.objects.get(pk=invoice.pk).status == Invoice.Status.OPEN


# --- the payload builders have the API's keys ---------------------------------------------------


@pytest.mark.parametrize(
    ("serializer", "type_"),
    [
        (CustomerSerializer, EventType.CUSTOMER_CREATED),
        (SubscriptionSerializer, EventType.SUBSCRIPTION_CREATED),
        (InvoiceSerializer, EventType.INVOICE_FINALIZED),
        (PaymentSerializer, EventType.PAYMENT_SUCCEEDED),
        (PaymentAttemptSerializer, EventType.PAYMENT_FAILED),
        (RefundSerializer, EventType.REFUND_CREATED),
        (CreditNoteSerializer, EventType.CREDIT_NOTE_CREATED),
    ],
)
def test_payload_keys_are_the_api_representation_keys(
    serializer: type[serializers.ModelSerializer[Any]],
    type_: str,
    make_customer: Callable[..., Customer],
    plans: dict[str, Plan],
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given one of everything
    customer = make_customer(currency="USD", autocharge=True)
    payment_method_attach(
        customer=customer, card_number=GENERIC_DECLINE, exp_month=12, exp_year=2030, actor=STAFF
    )
    with django_capture_on_commit_callbacks(execute=True):
        subscription_create(customer=customer, plan=plans["silver"], actor=STAFF)
    invoice = Invoice.objects.get(customer=customer)
    payment = payment_record_offline(
        invoice=invoice,
        amount=Decimal("10.00"),
        method="cheque",
        reference="",
        received_on=date(2026, 1, 15),
        actor=STAFF,
    )
    refund_create(payment=payment, actor=STAFF, amount=Decimal("1.00"))
    credit_note_create(
        invoice=invoice, actor=STAFF, outcome="credit_balance", amount=Decimal("2.00")
    )

    # then
    event = OutboxEvent.objects.filter(type=type_).latest("id")
    # (jsonb keeps no key order: the keys are compared as a set)
    assert set(event.payload) == set(serializer.Meta.fields)
