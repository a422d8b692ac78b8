"""Invoice lifecycle: finalization (numbers, dates, credit balance), void, write-off, drafts,
one-off invoices and previews that write nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.db import transaction

from billing.models import (
    CreditNote,
    CreditNoteLine,
    CustomerBalance,
    CustomerBalanceTransaction,
    DocumentSequence,
    Invoice,
    InvoiceLine,
)
from billing.selectors import balance_transactions, customer_balance
from billing.services import (
    OneOffItem,
    credit_note_create,
    customer_balance_adjust,
    invoice_create,
    invoice_create_one_off,
    invoice_delete_draft,
    invoice_finalize,
    invoice_mark_uncollectible,
    invoice_preview,
    invoice_void,
)
from catalog.models import Coupon
from core.errors import ConflictError, ValidationError
from core.models import AuditLog
from customers.models import Customer
from tests.billing.conftest import STAFF, line

pytestmark = pytest.mark.django_db

MakeInvoice = Callable[..., Invoice]
NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def _credit(customer: Customer, amount: str) -> None:
    customer_balance_adjust(
        customer=customer,
        currency=customer.currency,
        amount=Decimal(amount),
        kind="adjustment",
        actor=STAFF,
    )


def _actions() -> list[str]:
    return list(AuditLog.objects.order_by("id").values_list("action", flat=True))


# --- finalization -------------------------------------------------------------------------------


def test_finalizing_numbers_dates_and_opens_the_invoice(
    customer: Customer, make_invoice: MakeInvoice
):
    draft = make_invoice(customer, line(unit_amount="9.99"), finalize=False)
    assert (draft.status, draft.number, draft.issued_on) == ("draft", None, None)

    invoice = invoice_finalize(invoice=draft, actor=STAFF)

    assert invoice.status == Invoice.Status.OPEN
    assert invoice.number == "INV-2026-000001"
    assert invoice.sequence_number == 1
    assert (invoice.issued_on, invoice.due_on) == (date(2026, 1, 15), date(2026, 1, 15))
    assert invoice.finalized_at == NOW
    assert (invoice.amount_due, invoice.credit_applied, invoice.paid_at) == (
        Decimal("9.99"),
        0,
        None,
    )
    entry = AuditLog.objects.get(action="invoice.finalize")
    assert entry.before is not None
    assert entry.after is not None
    assert (entry.actor_label, entry.before["status"], entry.after["number"]) == (
        "alice",
        "draft",
        "INV-2026-000001",
    )


def test_numbers_follow_each_other_per_year(
    customer: Customer, make_invoice: MakeInvoice, clock: Callable[[datetime], Any]
):
    first = make_invoice(customer)
    second = make_invoice(customer)
    clock(datetime(2027, 1, 1, 0, 0, tzinfo=UTC))
    next_year = make_invoice(customer)

    assert [first.number, second.number, next_year.number] == [
        "INV-2026-000001",
        "INV-2026-000002",
        "INV-2027-000001",
    ]
    assert next_year.issued_on == date(2027, 1, 1)


def test_a_sequence_set_up_ahead_keeps_its_prefix(customer: Customer, make_invoice: MakeInvoice):
    DocumentSequence.objects.create(kind="invoice", name="2026", prefix="NW/26/", next_number=1)

    assert make_invoice(customer).number == "NW/26/000001"


def test_the_due_date_follows_the_setting(
    customer: Customer, make_invoice: MakeInvoice, settings: Any
):
    settings.INVOICE_DUE_DAYS = 14

    assert make_invoice(customer).due_on == date(2026, 1, 29)


def test_a_finalized_invoice_is_not_finalized_again(customer: Customer, make_invoice: MakeInvoice):
    invoice = make_invoice(customer)

    with pytest.raises(ConflictError) as refused:
        invoice_finalize(invoice=invoice, actor=STAFF)

    assert refused.value.code == "invoice_not_draft"
    assert DocumentSequence.objects.get().next_number == 2


def test_a_finalization_that_rolls_back_gives_its_number_back(
    customer: Customer, make_invoice: MakeInvoice
):
    assert make_invoice(customer).number == "INV-2026-000001"
    draft = make_invoice(customer, finalize=False)
    other = make_invoice(customer, finalize=False)

    def finalize_then_fail() -> None:
        with transaction.atomic():
            assert invoice_finalize(invoice=draft, actor=STAFF).number == "INV-2026-000002"
            raise RuntimeError("the caller's work failed after finalizing")

    with pytest.raises(RuntimeError):
        finalize_then_fail()

    draft.refresh_from_db()
    assert (draft.status, draft.number) == ("draft", None)
    assert DocumentSequence.objects.get().next_number == 2
    assert invoice_finalize(invoice=other, actor=STAFF).number == "INV-2026-000002"
    assert invoice_finalize(invoice=draft, actor=STAFF).number == "INV-2026-000003"


def test_an_invoice_with_nothing_to_pay_is_paid_at_once(
    customer: Customer, make_invoice: MakeInvoice
):
    invoice = make_invoice(customer, line("Trial", unit_amount="0"))

    assert (invoice.status, invoice.amount_due, invoice.paid_at) == ("paid", 0, NOW)
    assert invoice.number == "INV-2026-000001"
    assert not CustomerBalanceTransaction.objects.exists()


# --- the customer's credit balance ----------------------------------------------------------------


def test_the_credit_balance_is_applied_at_finalization(
    californian: Customer, make_invoice: MakeInvoice
):
    _credit(californian, "3.00")

    invoice = make_invoice(californian, line(unit_amount="10.00", proration=(17, 31)))

    assert invoice.total == Decimal("5.88")
    assert (invoice.credit_applied, invoice.amount_due, invoice.status) == (
        Decimal("3.00"),
        Decimal("2.88"),
        "open",
    )
    applied = balance_transactions(customer=californian).first()
    assert applied is not None
    assert (applied.kind, applied.amount, applied.balance_after, applied.invoice) == (
        "applied_to_invoice",
        Decimal("-3.00"),
        0,
        invoice,
    )
    assert customer_balance(customer=californian, currency="USD") == 0


def test_a_balance_bigger_than_the_invoice_pays_it_and_keeps_the_rest(
    customer: Customer, make_invoice: MakeInvoice
):
    _credit(customer, "25.00")

    invoice = make_invoice(customer, line(unit_amount="9.99"))

    assert (invoice.credit_applied, invoice.amount_due, invoice.status, invoice.paid_at) == (
        Decimal("9.99"),
        0,
        "paid",
        NOW,
    )
    assert customer_balance(customer=customer, currency="USD") == Decimal("15.01")


def test_a_draft_does_not_touch_the_balance(customer: Customer, make_invoice: MakeInvoice):
    _credit(customer, "5.00")

    make_invoice(customer, finalize=False)

    assert customer_balance(customer=customer, currency="USD") == Decimal("5.00")
    assert CustomerBalanceTransaction.objects.count() == 1


def test_a_negative_invoice_goes_to_the_balance_and_nothing_is_due(
    customer: Customer, make_invoice: MakeInvoice
):
    _credit(customer, "1.00")

    invoice = make_invoice(
        customer,
        line(
            "Unused time on Annual",
            unit_amount="120.00",
            proration=(200, 365),
            kind=InvoiceLine.Kind.PRORATION_CREDIT,
        ),
        line(
            "Monthly from Jul 20", unit_amount="10.00", proration=(11, 31), kind="proration_charge"
        ),
        billing_reason=Invoice.BillingReason.SUBSCRIPTION_UPDATE,
    )

    # -65.75 (120 x 200 / 365 = 65.7534) + 3.55 (10 x 11 / 31 = 3.548)
    assert invoice.total == Decimal("-62.20")
    assert (invoice.amount_due, invoice.credit_applied, invoice.status) == (0, 0, "paid")
    credited = balance_transactions(customer=customer).first()
    assert credited is not None
    assert (credited.kind, credited.amount, credited.balance_after, credited.invoice) == (
        "proration_credit",
        Decimal("62.20"),
        Decimal("63.20"),
        invoice,
    )

    # The change back: the next invoice uses the credit.
    back = make_invoice(customer, line("Annual", unit_amount="120.00"))
    assert (back.credit_applied, back.amount_due) == (Decimal("63.20"), Decimal("56.80"))
    assert customer_balance(customer=customer, currency="USD") == 0


# --- void, uncollectible, delete ------------------------------------------------------------------


def test_voiding_gives_the_balance_back_and_keeps_the_number(
    customer: Customer, make_invoice: MakeInvoice, clock: Callable[[datetime], Any]
):
    _credit(customer, "4.00")
    invoice = make_invoice(customer, line(unit_amount="9.99"))
    clock(datetime(2026, 1, 20, 9, 0, tzinfo=UTC))

    voided = invoice_void(invoice=invoice, actor=STAFF)

    assert (voided.status, voided.number, voided.amount_due) == ("void", "INV-2026-000001", 0)
    assert voided.voided_at == datetime(2026, 1, 20, 9, 0, tzinfo=UTC)
    returned = balance_transactions(customer=customer).first()
    assert returned is not None
    assert (returned.kind, returned.amount, returned.balance_after) == (
        "invoice_voided",
        Decimal("4.00"),
        Decimal("4.00"),
    )
    assert make_invoice(customer).number == "INV-2026-000002"
    assert "invoice.void" in _actions()


@pytest.mark.parametrize("status", ["draft", "paid", "void", "uncollectible"])
def test_only_an_open_invoice_is_voided_or_written_off(
    customer: Customer, make_invoice: MakeInvoice, status: str
):
    invoice = make_invoice(customer, finalize=status != "draft")
    if status == "paid":
        invoice = make_invoice(customer, line(unit_amount="0"))
    elif status == "void":
        invoice = invoice_void(invoice=invoice, actor=STAFF)
    elif status == "uncollectible":
        invoice = invoice_mark_uncollectible(invoice=invoice, actor=STAFF)
    before = _actions()

    with pytest.raises(ConflictError) as void_refused:
        invoice_void(invoice=invoice, actor=STAFF)
    with pytest.raises(ConflictError) as write_off_refused:
        invoice_mark_uncollectible(invoice=invoice, actor=STAFF)

    assert void_refused.value.code == write_off_refused.value.code == "invoice_not_open"
    invoice.refresh_from_db()
    assert invoice.status == status
    assert _actions() == before


def test_an_invoice_with_a_credit_note_is_not_voided(customer: Customer, make_invoice: MakeInvoice):
    invoice = make_invoice(customer, line(unit_amount="10.00"))
    credit_note_create(
        invoice=invoice, actor=STAFF, outcome="reduce_amount_due", amount=Decimal("2.00")
    )

    with pytest.raises(ConflictError) as refused:
        invoice_void(invoice=invoice, actor=STAFF)

    assert refused.value.code == "invoice_has_credit_notes"


def test_marking_uncollectible_keeps_what_is_due(customer: Customer, make_invoice: MakeInvoice):
    invoice = make_invoice(customer, line(unit_amount="9.99"))

    written_off = invoice_mark_uncollectible(invoice=invoice, actor=STAFF)

    assert (written_off.status, written_off.amount_due, written_off.marked_uncollectible_at) == (
        "uncollectible",
        Decimal("9.99"),
        NOW,
    )
    assert "invoice.mark_uncollectible" in _actions()


def test_a_draft_can_be_deleted(customer: Customer, make_invoice: MakeInvoice):
    draft = make_invoice(customer, line(), line("Second"), finalize=False)
    draft_id = draft.pk

    invoice_delete_draft(invoice=draft, actor=STAFF)

    assert not Invoice.objects.filter(pk=draft_id).exists()
    assert not InvoiceLine.objects.exists()
    entry = AuditLog.objects.get(action="invoice.delete")
    assert entry.object_id == str(draft_id)
    assert entry.before is not None
    assert [row["description"] for row in entry.before["lines"]] == ["Digital monthly", "Second"]


def test_a_finalized_invoice_is_never_deleted(customer: Customer, make_invoice: MakeInvoice):
    invoice = make_invoice(customer)

    with pytest.raises(ConflictError) as refused:
        invoice_delete_draft(invoice=invoice, actor=STAFF)

    assert refused.value.code == "invoice_not_draft"
    assert Invoice.objects.filter(pk=invoice.pk).exists()


# --- creation -------------------------------------------------------------------------------------


def test_creation_is_audited_with_its_lines(customer: Customer, make_invoice: MakeInvoice):
    invoice = make_invoice(
        customer,
        line(subscription_id=41, period_start=date(2026, 1, 15), period_end=date(2026, 2, 15)),
    )

    entry = AuditLog.objects.get(action="invoice.create")
    assert entry.object_id == str(invoice.pk)
    assert entry.after is not None
    assert entry.after["lines"][0]["subscription_id"] == 41
    assert entry.after["status"] == "draft"
    assert [a for a in _actions() if a.startswith("invoice.")] == [
        "invoice.create",
        "invoice.finalize",
    ]


def test_a_period_billed_twice_is_refused_and_nothing_is_written(
    customer: Customer, make_invoice: MakeInvoice
):
    period: dict[str, Any] = {
        "subscription_id": 7,
        "period_start": date(2026, 1, 15),
        "period_end": date(2026, 2, 15),
    }
    make_invoice(customer, line(**period))
    before = (Invoice.objects.count(), InvoiceLine.objects.count(), len(_actions()))

    with pytest.raises(ConflictError) as refused:
        make_invoice(customer, line("Other", unit_amount="1.00"), line(**period))

    assert (refused.value.code, refused.value.param) == ("period_already_billed", "lines")
    assert (Invoice.objects.count(), InvoiceLine.objects.count(), len(_actions())) == before
    assert DocumentSequence.objects.get().next_number == 2


def test_the_same_period_may_be_credited_and_charged_again_by_prorations(
    customer: Customer, make_invoice: MakeInvoice
):
    period: dict[str, Any] = {
        "subscription_id": 7,
        "period_start": date(2026, 1, 20),
        "period_end": date(2026, 2, 15),
    }

    make_invoice(
        customer,
        line(kind="proration_credit", proration=(26, 31), **period),
        line(kind="proration_charge", proration=(26, 31), **period),
    )
    make_invoice(customer, line(kind="proration_credit", proration=(26, 31), **period))

    assert InvoiceLine.objects.count() == 3


# --- one-off invoices -----------------------------------------------------------------------------


def test_a_one_off_invoice_taxes_the_items_that_say_so(californian: Customer, clock: Any):
    invoice = invoice_create_one_off(
        customer=californian,
        currency="USD",
        items=[
            OneOffItem(
                description="Consulting hour", unit_amount=Decimal("19.99"), quantity=Decimal(2)
            ),
            OneOffItem(description="Shipping", unit_amount=Decimal("5.00"), tax=False),
        ],
        actor=STAFF,
        memo="Thanks!",
    )

    rows = [
        (row.kind, row.description, row.amount, row.tax_amount, row.total)
        for row in invoice.lines.order_by("position")
    ]
    assert rows == [
        ("one_off", "Consulting hour", Decimal("39.98"), Decimal("2.90"), Decimal("42.88")),
        ("one_off", "Shipping", Decimal("5.00"), 0, Decimal("5.00")),
    ]
    assert (invoice.billing_reason, invoice.total, invoice.status, invoice.memo) == (
        "manual",
        Decimal("47.88"),
        "open",
        "Thanks!",
    )
    assert invoice.number == "INV-2026-000001"


def test_a_one_off_draft_stays_a_draft(customer: Customer, clock: Any):
    invoice = invoice_create_one_off(
        customer=customer,
        currency="USD",
        items=[OneOffItem(description="Setup", unit_amount=Decimal("50"))],
        actor=STAFF,
        finalize=False,
    )

    assert (invoice.status, invoice.number, invoice.total) == ("draft", None, Decimal("50.00"))


@pytest.mark.parametrize(
    ("currency", "item", "code", "param"),
    [
        ("USD", OneOffItem("Fee", Decimal("1.999")), "invalid_amount", "items[0].unit_amount"),
        ("USD", OneOffItem("Fee", Decimal("-1")), "invalid_amount", "items[0].unit_amount"),
        (
            "USD",
            OneOffItem("Fee", Decimal("1"), quantity=Decimal(0)),
            "invalid_quantity",
            "items[0].quantity",
        ),
        ("USD", OneOffItem(" ", Decimal("1")), "invalid_description", "items[0].description"),
        ("JPY", OneOffItem("Fee", Decimal("10.5")), "invalid_amount", "items[0].unit_amount"),
    ],
)
def test_a_bad_one_off_item_is_refused(
    make_customer: Callable[..., Customer],
    currency: str,
    item: OneOffItem,
    code: str,
    param: str,
) -> None:
    customer = make_customer(currency=currency)

    with pytest.raises(ValidationError) as refused:
        invoice_create_one_off(customer=customer, currency=currency, items=[item], actor=STAFF)

    assert (refused.value.code, refused.value.param) == (code, param)
    assert not Invoice.objects.exists()


def test_a_one_off_invoice_needs_items(customer: Customer, clock: Any):
    with pytest.raises(ValidationError) as refused:
        invoice_create_one_off(customer=customer, currency="USD", items=[], actor=STAFF)

    assert (refused.value.code, refused.value.param) == ("no_items", "items")


def test_a_customer_without_a_currency_can_be_invoiced_in_any(
    make_customer: Callable[..., Customer],
):
    customer = make_customer()

    invoice = invoice_create_one_off(
        customer=customer,
        currency="eur",
        items=[OneOffItem(description="Fee", unit_amount=Decimal("3"))],
        actor=STAFF,
    )

    assert (invoice.currency, invoice.total) == ("EUR", Decimal("3.00"))


# --- previews -------------------------------------------------------------------------------------


def _row_counts() -> dict[str, int]:
    models = [
        Invoice,
        InvoiceLine,
        DocumentSequence,
        CustomerBalance,
        CustomerBalanceTransaction,
        CreditNote,
        CreditNoteLine,
        AuditLog,
    ]
    return {model.__name__: model._default_manager.count() for model in models}


def test_a_preview_writes_nothing_and_matches_the_real_invoice(
    californian: Customer, percent_coupon: Coupon, fixed_coupon: Coupon, make_invoice: MakeInvoice
):
    _credit(californian, "7.00")
    lines = [
        line(
            "Unused time on Silver",
            unit_amount="20.00",
            proration=(17, 31),
            kind="proration_credit",
            coupon_id=percent_coupon.pk,
            subscription_id=3,
            period_start=date(2026, 1, 15),
            period_end=date(2026, 2, 1),
        ),
        line(
            "Gold from Jan 15",
            unit_amount="40.00",
            proration=(17, 31),
            kind="proration_charge",
            coupon_id=fixed_coupon.pk,
            subscription_id=3,
            period_start=date(2026, 1, 15),
            period_end=date(2026, 2, 1),
        ),
    ]
    before = _row_counts()

    preview = invoice_preview(
        customer=californian, currency="USD", billing_reason="subscription_update", lines=lines
    )

    assert _row_counts() == before
    assert preview.invoice.pk is None
    assert all(row.pk is None for row in preview.lines)
    invoice = invoice_create(
        customer=californian,
        currency="USD",
        billing_reason="subscription_update",
        lines=lines,
        actor=STAFF,
    )
    fields = ["kind", "amount", "discount_amount", "tax_percent", "tax_amount", "total"]
    assert [tuple(getattr(row, f) for f in fields) for row in preview.lines] == [
        tuple(getattr(row, f) for f in fields) for row in invoice.lines.order_by("position")
    ]
    assert (
        preview.invoice.subtotal,
        preview.invoice.discount_total,
        preview.invoice.tax_total,
        preview.invoice.total,
    ) == (invoice.subtotal, invoice.discount_total, invoice.tax_total, invoice.total)
    assert (preview.starting_balance, preview.credit_applied, preview.amount_due) == (
        Decimal("7.00"),
        invoice.credit_applied,
        invoice.amount_due,
    )
    # -10.97 + 2.74 discount - 0.60 tax; 21.94 - 5.00 discount + 1.23 tax
    assert [row.total for row in preview.lines] == [Decimal("-8.83"), Decimal("18.17")]
    assert (preview.credit_applied, preview.amount_due) == (Decimal("7.00"), Decimal("2.34"))


def test_a_preview_of_a_negative_invoice_applies_no_credit(customer: Customer, clock: Any):
    _credit(customer, "2.00")

    preview = invoice_preview(
        customer=customer,
        currency="USD",
        billing_reason="subscription_cancel",
        lines=[line(kind="proration_credit", proration=(10, 31))],
    )

    assert (preview.invoice.total, preview.credit_applied, preview.amount_due) == (
        Decimal("-3.23"),
        0,
        0,
    )
