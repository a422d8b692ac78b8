"""Charging many invoices at once (`invoices_autocharge`): exactly what charging each in turn
does, with a number of queries that does not grow with the number of invoices."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from django.db import close_old_connections, connection, transaction
from django.test.utils import CaptureQueriesContext

from billing.gateways.base import ChargeRequest, ChargeResult
from billing.gateways.simulated import SimulatedGateway
from billing.ledger.models import JournalEntry, JournalLine
from billing.models import (
    GatewayCustomer,
    Invoice,
    Payment,
    PaymentAttempt,
    PaymentMethod,
    SimulatedCharge,
)
from billing.services import (
    invoice_autocharge,
    invoice_pay_now,
    payment_method_attach,
    payment_record_offline,
)
from billing.services.payments import _claim, invoices_autocharge
from core import clock as platform_clock
from core.errors import ValidationError
from core.models import AuditLog
from core.webhooks.models import OutboxEvent
from customers.models import Customer

from .conftest import (
    GENERIC_DECLINE,
    PROCESSING_ERROR,
    STAFF,
    STOLEN,
    STRIPE_SECRET_KEY,
    TIMEOUT,
    VISA,
    line,
)

pytestmark = pytest.mark.django_db

D = Decimal
MakeCustomer = Callable[..., Customer]
SaveCard = Callable[..., PaymentMethod]
Bill = Callable[..., Invoice]
Capture = Callable[..., AbstractContextManager[list[Callable[[], Any]]]]
Card = Callable[[str], str]


# --- a population of invoices, one of each kind -----------------------------------------------


@dataclass
class Population:
    invoices: dict[int, str]  # invoice id -> its name
    order: list[int]  # the ids as they are charged, one invoice twice

    def name(self, invoice_id: int) -> str:
        return self.invoices[invoice_id]


def _populate(make_customer: MakeCustomer, save_card: SaveCard, bill: Bill) -> Population:
    """Open invoices billed before the card is saved, so nothing is charged yet."""
    invoices: dict[int, str] = {}

    def customer_with(card: str | None, *names: str, autocharge: bool = True) -> list[Invoice]:
        customer = make_customer(autocharge=autocharge)
        billed = [bill(customer, line("Digital monthly", "31.00")) for _ in names]
        for invoice, name in zip(billed, names, strict=True):
            assert invoice.status == Invoice.Status.OPEN
            invoices[invoice.pk] = name
        if card is not None:
            save_card(customer, card)
        return billed

    customer_with(VISA, "visa")
    customer_with(GENERIC_DECLINE, "soft")
    # the second invoice of a hard-declined card is never tried: the first blocks the card
    customer_with(STOLEN, "hard", "hard again")
    customer_with(VISA, "visa 1 of 2", "visa 2 of 2")
    customer_with(PROCESSING_ERROR, "processing error")
    customer_with(TIMEOUT, "timeout")
    customer_with(None, "no default method")
    customer_with(VISA, "pays by invoice", autocharge=False)
    (paid,) = customer_with(VISA, "already paid")
    payment_record_offline(
        invoice=paid,
        amount=D("31.00"),
        method="bank_transfer",
        reference="wire 1",
        received_on=platform_clock.today(),
        actor=STAFF,
    )
    (pending,) = customer_with(VISA, "pending attempt")
    _claim(
        pending,
        PaymentMethod.objects.get(customer=pending.customer),
        trigger=PaymentAttempt.Trigger.AUTOCHARGE,
        actor=STAFF,
    )
    # an earlier charge's outcome is unknown: it is retried with its own key (and went through)
    (unknown,) = customer_with(TIMEOUT, "unknown outcome")
    assert invoice_pay_now(invoice=unknown, actor=STAFF).status == PaymentAttempt.Status.UNKNOWN
    ids = list(invoices)
    soft = next(pk for pk, name in invoices.items() if name == "soft")
    return Population(invoices=invoices, order=[*ids, soft])


# --- what a population's rows look like, without ids, numbers and random references -----------


def _rows(population: Population, *, audit_after: int, event_after: int, entry_after: int) -> Any:
    names = population.invoices
    invoices = Invoice.objects.filter(pk__in=names)
    customers: dict[int | None, str] = {i.customer_id: names[i.pk] for i in invoices}
    attempts = PaymentAttempt.objects.filter(invoice_id__in=names)
    payments = Payment.objects.filter(invoice_id__in=names)
    paid = payments.values_list("pk", "invoice_id", "method")
    labels: dict[str, dict[Any, str]] = {
        "invoice": dict(names),
        "customer": customers,
        "payment_method": {
            method.pk: f"{customers[method.customer_id]} card"
            for method in PaymentMethod.objects.filter(customer_id__in=customers)
        },
        "attempt": {a.pk: f"{names[a.invoice_id]} #{a.attempt_number}" for a in attempts},
        "payment": {pk: f"{names[invoice_id]} paid {method}" for pk, invoice_id, method in paid},
    }
    numbers = {invoice.number: names[invoice.pk] for invoice in invoices}
    sequence_numbers = {invoice.sequence_number: names[invoice.pk] for invoice in invoices}

    def key(value: str) -> str:
        invoice_id, _, attempt = value.removeprefix("invoice-").partition("-attempt-")
        return f"invoice-{names[int(invoice_id)]}-attempt-{attempt}"

    def clean(kind: str, data: dict[str, Any] | None) -> Any:
        if data is None:
            return None
        cleaned = {}
        for field, value in sorted(data.items()):
            if field == "id":
                value = labels[kind][value]
            elif field in labels and value is not None:
                value = labels[field][value]
            elif field in ("gateway_reference", "public_id", "claimed_at"):  # random, wall clock
                value = bool(value)
            elif field == "idempotency_key":
                value = key(value)
            elif field == "number" and kind == "invoice":
                value = numbers[value]
            elif field == "sequence_number":
                value = sequence_numbers[value]
            elif field == "lines":
                value = [{k: v for k, v in x.items() if k != "id"} for x in value]
            cleaned[field] = value
        return sorted(cleaned.items())

    model_kinds = {
        "billing.invoice": "invoice",
        "billing.paymentattempt": "attempt",
        "billing.payment": "payment",
    }
    audit = sorted(
        (
            row.action,
            labels[model_kinds[row.object_type]][int(row.object_id)],
            repr(clean(model_kinds[row.object_type], row.before)),
            repr(clean(model_kinds[row.object_type], row.after)),
        )
        for row in AuditLog.objects.filter(pk__gt=audit_after)
    )
    event_kinds = {
        "payment.succeeded": "payment",
        "payment.failed": "attempt",
        "invoice.paid": "invoice",
        "invoice.payment_failed": "invoice",
    }
    events = sorted(
        (type_, customers[customer_id], repr(clean(event_kinds[type_], payload)))
        for type_, customer_id, payload in OutboxEvent.objects.filter(
            pk__gt=event_after
        ).values_list("type", "customer_id", "payload")
    )
    ledger: Counter[tuple[str, str, str]] = Counter()
    for journal_line in JournalLine.objects.filter(entry_id__gt=entry_after).select_related(
        "account"
    ):
        party = journal_line.account.party
        who = customers[int(party.removeprefix("customer:"))] if party else ""
        ledger[(journal_line.account.code, who, journal_line.side)] += journal_line.amount
    entries = sorted(
        labels["payment"][int(source_id)]
        for source_id in JournalEntry.objects.filter(pk__gt=entry_after).values_list(
            "source_id", flat=True
        )
    )
    return {
        "invoices": sorted(
            (names[i.pk], i.status, i.amount_paid, i.amount_due, i.paid_at) for i in invoices
        ),
        "attempts": sorted(
            repr(clean("attempt", {f.name: f.value_from_object(a) for f in a._meta.fields}))
            for a in attempts
        ),
        "payments": sorted(
            repr(clean("payment", {f.name: f.value_from_object(p) for f in p._meta.fields}))
            for p in payments
        ),
        "ledger": dict(ledger),
        "ledger entries": entries,
        "audit": audit,
        "events": events,
    }


def _last(model: Any) -> int:
    return model.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def _charged(
    population: Population,
    charge: Callable[[Sequence[int]], None],
    heard: list[int],
    capture: Capture,
) -> dict[str, Any]:
    marks = {"audit_after": _last(AuditLog), "event_after": _last(OutboxEvent)}
    marks["entry_after"] = _last(JournalEntry)
    heard.clear()
    for _ in range(2):  # twice: the second pass retries what may be retried
        with capture(execute=True):
            charge(population.order)
    rows = _rows(population, **marks)
    rows["listeners heard"] = sorted(population.name(pk) for pk in heard)
    return rows


def test_a_batch_ends_exactly_as_charging_each_invoice_in_turn(
    make_customer: MakeCustomer,
    save_card: SaveCard,
    bill: Bill,
    heard: list[int],
    django_capture_on_commit_callbacks: Capture,
) -> None:
    # given two identical populations of invoices, one of each kind
    one_by_one = _populate(make_customer, save_card, bill)
    batch = _populate(make_customer, save_card, bill)

    # when the first is charged one invoice at a time and the second in one batch (twice each)
    def each(ids: Sequence[int]) -> None:
        for invoice_id in ids:
            invoice_autocharge(invoice_id=invoice_id)

    def at_once(ids: Sequence[int]) -> None:
        invoices_autocharge(invoice_ids=ids)

    expected = _charged(one_by_one, each, heard, django_capture_on_commit_callbacks)
    got = _charged(batch, at_once, heard, django_capture_on_commit_callbacks)

    # then every row is the same
    for table in expected:
        assert got[table] == expected[table], table
    # and the outcomes are the ones each card gives
    outcomes = {
        name: sorted(
            PaymentAttempt.objects.filter(invoice_id=pk).values_list("attempt_number", "status")
        )
        for pk, name in batch.invoices.items()
    }
    assert outcomes == {
        "visa": [(1, "succeeded")],
        "soft": [(1, "declined"), (2, "declined"), (3, "declined"), (4, "declined")],
        "hard": [(1, "declined")],
        "hard again": [],
        "visa 1 of 2": [(1, "succeeded")],
        "visa 2 of 2": [(1, "succeeded")],
        "processing error": [(1, "unknown")],
        "timeout": [(1, "succeeded")],  # unknown, then found charged by its retry
        "no default method": [],
        "pays by invoice": [],
        "already paid": [],
        "pending attempt": [(1, "pending")],
        "unknown outcome": [(1, "succeeded")],
    }
    # one charge per key at the gateway: visa, soft, hard, visa 1 and 2, timeout, unknown outcome
    first_keys = [f"invoice-{pk}-attempt-1" for pk in batch.invoices]
    assert SimulatedCharge.objects.filter(idempotency_key__in=first_keys).count() == 7


def _visa_invoices(
    make_customer: MakeCustomer, save_card: SaveCard, bill: Bill, count: int
) -> list[int]:
    ids = []
    for _ in range(count):
        customer = make_customer()
        ids.append(bill(customer, line("Digital monthly", "31.00")).pk)
        save_card(customer, VISA)
    return ids


def test_charging_a_batch_twice_charges_each_invoice_once(
    make_customer: MakeCustomer, save_card: SaveCard, bill: Bill
) -> None:
    ids = _visa_invoices(make_customer, save_card, bill, 3)

    first = invoices_autocharge(invoice_ids=ids)
    second = invoices_autocharge(invoice_ids=ids)

    assert [(a.invoice_id, a.status) for a in first] == [(pk, "succeeded") for pk in ids]
    assert second == []
    assert Payment.objects.filter(invoice_id__in=ids).count() == 3
    assert SimulatedCharge.objects.count() == 3
    assert set(Invoice.objects.filter(pk__in=ids).values_list("status", flat=True)) == {"paid"}


def test_the_queries_of_a_batch_do_not_grow_with_its_size(
    make_customer: MakeCustomer,
    save_card: SaveCard,
    bill: Bill,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    counts = {}
    for size in (1, 5, 50):  # the first batch also opens the ledger's cash account
        ids = _visa_invoices(make_customer, save_card, bill, size)
        with (
            CaptureQueriesContext(connection) as queries,
            django_capture_on_commit_callbacks(execute=True),
        ):
            attempts = invoices_autocharge(invoice_ids=ids)
        assert [a.status for a in attempts] == ["succeeded"] * size
        counts[size] = len(queries)

    print(f"\nqueries to autocharge a batch of 5 and of 50 (listeners included): {counts}")
    assert counts[50] == counts[5]


def test_stripe_charges_a_batch_one_call_each(
    make_customer: MakeCustomer, bill: Bill, stripe_gateway: Any, stripe_card: Card
) -> None:
    customers, ids = _stripe_invoices(make_customer, bill, stripe_card)

    attempts = invoices_autocharge(invoice_ids=ids)

    assert [(a.invoice_id, a.status) for a in attempts] == [(pk, "succeeded") for pk in ids]
    assert [len(_stripe_charges(stripe_gateway, c)) for c in customers] == [1, 1]


def test_a_failed_gateway_call_leaves_the_batch_unknown_and_the_next_try_charges_once(
    make_customer: MakeCustomer, bill: Bill, stripe_gateway: Any, stripe_card: Card, settings: Any
) -> None:
    customers, ids = _stripe_invoices(make_customer, bill, stripe_card)
    settings.STRIPE_SECRET_KEY = ""

    with pytest.raises(ValidationError) as failed:
        invoices_autocharge(invoice_ids=ids)

    assert failed.value.code == "gateway_not_configured"
    unknown = list(PaymentAttempt.objects.order_by("pk").values_list("invoice_id", "status"))
    assert unknown == [(pk, "unknown") for pk in ids]

    settings.STRIPE_SECRET_KEY = STRIPE_SECRET_KEY
    attempts = invoices_autocharge(invoice_ids=ids)

    assert [(a.attempt_number, a.status) for a in attempts] == [(1, "succeeded")] * 2
    assert [len(_stripe_charges(stripe_gateway, c)) for c in customers] == [1, 1]


def _stripe_invoices(
    make_customer: MakeCustomer, bill: Bill, stripe_card: Card
) -> tuple[list[Customer], list[int]]:
    customers = [make_customer(), make_customer()]
    ids = [bill(customer, line("Digital monthly", "31.00")).pk for customer in customers]
    for customer in customers:
        payment_method_attach(
            customer=customer, payment_method_reference=stripe_card(VISA), actor=STAFF
        )
    return customers, ids


def _stripe_charges(client: Any, customer: Customer) -> list[Any]:
    reference = GatewayCustomer.objects.get(customer=customer, gateway="stripe").reference
    return list(client.v1.charges.list(params={"customer": reference, "limit": 100}).data)


# --- the simulated gateway's batch ----------------------------------------------------------------


def _request(token: str, key: str, amount: str = "31.00") -> ChargeRequest:
    return ChargeRequest(
        amount=D(amount),
        currency="USD",
        customer_reference="simcus_1",
        payment_method_reference=token,
        idempotency_key=key,
        description="Invoice test",
    )


def _card(number: str) -> str:
    return (
        SimulatedGateway()
        .attach_payment_method(
            customer_reference="simcus_1", card_number=number, exp_month=12, exp_year=2030
        )
        .reference
    )


def test_the_simulated_batch_answers_each_card_as_charge_does_and_replays_known_keys(
    clock: Any,
) -> None:
    gateway = SimulatedGateway()
    visa, soft, hard, error, timeout = (
        _card(n) for n in (VISA, GENERIC_DECLINE, STOLEN, PROCESSING_ERROR, TIMEOUT)
    )
    charged_alone = gateway.charge(**vars_of(_request(visa, "alone")))
    requests = [
        _request(visa, "a"),
        _request(soft, "b"),
        _request(hard, "c"),
        _request(error, "d"),
        _request(timeout, "e"),
        _request("simtok_gone", "f"),
        _request(soft, "alone"),  # a key charged before: its first outcome, whatever the card
        _request(visa, "a", amount="99.00"),  # the same key twice in one batch
    ]

    first = gateway.charge_many(requests)
    again = gateway.charge_many(requests)

    assert [(r.status, r.decline_code, r.decline_kind) for r in first] == [
        ("succeeded", "", ""),
        ("declined", "generic_decline", "soft"),
        ("declined", "stolen_card", "hard"),
        ("unknown", "", ""),
        ("unknown", "", ""),  # the timeout: charged, but the answer was lost
        ("declined", "invalid_payment_method", "hard"),
        ("succeeded", "", ""),
        ("succeeded", "", ""),
    ]
    assert first[6] == charged_alone
    assert first[7] == first[0]
    charges = {c.idempotency_key: c for c in SimulatedCharge.objects.all()}
    assert sorted(charges) == ["a", "alone", "b", "c", "e"]
    assert charges["a"].amount == D("31.00")
    # the replay: known keys answer their first outcome, the lost timeout now found
    timeout_result = ChargeResult.succeeded(charges["e"].reference)
    assert again == [*first[:4], timeout_result, first[5], *first[6:]]
    assert SimulatedCharge.objects.count() == 5
    assert gateway.charge(**vars_of(_request(visa, "b"))) == first[1]


def vars_of(request: ChargeRequest) -> dict[str, Any]:
    return {field: getattr(request, field) for field in ChargeRequest.__dataclass_fields__}


@pytest.mark.django_db(transaction=True)
def test_a_twin_batch_sent_at_the_same_time_replays_the_first_charge(clock: Any) -> None:
    # given a charge of a key inserted but not committed yet by another worker
    gateway = SimulatedGateway()
    request = _request(_card(TIMEOUT), "twin")
    inserted, release = threading.Event(), threading.Event()
    answers: dict[str, list[ChargeResult]] = {}

    def first() -> None:
        try:
            with transaction.atomic():
                answers["first"] = gateway.charge_many([request])
                inserted.set()
                release.wait(timeout=20)
        finally:
            connection.close()

    def twin() -> None:
        try:
            answers["twin"] = gateway.charge_many([request])
        finally:
            connection.close()

    # when the twin sends the same key meanwhile (and waits on the key's row)
    threads = [threading.Thread(target=first), threading.Thread(target=twin)]
    threads[0].start()
    assert inserted.wait(timeout=20)
    threads[1].start()
    _wait_for_a_lock_wait()
    release.set()
    for thread in threads:
        thread.join(timeout=20)
    close_old_connections()

    # then the first learns nothing (a timeout) and the twin replays the one charge made
    (charge,) = SimulatedCharge.objects.all()
    assert answers["first"] == [ChargeResult.unknown("The gateway did not answer in time.")]
    assert answers["twin"] == [ChargeResult.succeeded(charge.reference)]


def _wait_for_a_lock_wait() -> None:
    deadline = time.monotonic() + 20
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.05)
    raise AssertionError("the twin never waited for the first charge's row")
