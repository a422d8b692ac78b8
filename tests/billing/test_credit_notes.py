"""Credit notes: whole invoices, chosen lines, lump amounts; to the balance or off what is due;
taxed like their lines; never more than what is left to credit."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.models import CreditNote, CustomerBalanceTransaction, DocumentSequence, Invoice
from billing.selectors import (
    balance_transactions,
    credit_notes_for_invoice,
    customer_balance,
    invoice_creditable_total,
    invoice_line_creditable,
)
from billing.services import (
    credit_note_create,
    customer_balance_adjust,
    invoice_mark_uncollectible,
    invoice_void,
)
from core.errors import ConflictError, ValidationError
from core.models import AuditLog
from customers.models import Customer
from tests.billing.conftest import STAFF, line

pytestmark = pytest.mark.django_db

MakeInvoice = Callable[..., Invoice]


@pytest.fixture
def invoice(californian: Customer, make_invoice: MakeInvoice) -> Invoice:
    """Open, 32.18 USD: 10.00 + 0.73 tax and 20.00 + 1.45 tax (California, 7.25%)."""
    return make_invoice(californian, line("Basic", "10.00"), line("Premium", "20.00"))


def _lines(invoice: Invoice) -> list[Any]:
    return list(invoice.lines.order_by("position"))


def _note_lines(note: CreditNote) -> list[tuple[str, Decimal, Decimal, Decimal]]:
    return [
        (row.description, row.amount, row.tax_amount, row.total)
        for row in note.lines.order_by("id")
    ]


def test_the_whole_invoice_taken_off_the_amount_due(invoice: Invoice) -> None:
    assert invoice.total == Decimal("32.18")

    note = credit_note_create(
        invoice=invoice, actor=STAFF, outcome="reduce_amount_due", reason="duplicate"
    )

    assert note.number == "CN-2026-000001"
    assert (note.subtotal, note.tax_amount, note.total) == (
        Decimal("30.00"),
        Decimal("2.18"),
        Decimal("32.18"),
    )
    assert _note_lines(note) == [
        ("Basic", Decimal("10.00"), Decimal("0.73"), Decimal("10.73")),
        ("Premium", Decimal("20.00"), Decimal("1.45"), Decimal("21.45")),
    ]
    invoice.refresh_from_db()
    assert (invoice.credited_total, invoice.amount_due, invoice.status) == (
        Decimal("32.18"),
        0,
        "paid",
    )
    assert not CustomerBalanceTransaction.objects.exists()
    assert {"credit_note.create", "invoice.credit"} <= set(
        AuditLog.objects.values_list("action", flat=True)
    )
    assert DocumentSequence.objects.get(kind="invoice").next_number == 2


def test_a_paid_invoice_credited_to_the_balance(
    californian: Customer, make_invoice: MakeInvoice
) -> None:
    customer_balance_adjust(
        customer=californian, currency="USD", amount=Decimal("50"), kind="adjustment", actor=STAFF
    )
    paid = make_invoice(californian, line("Basic", "10.00"))
    assert (paid.status, paid.credit_applied) == ("paid", Decimal("10.73"))

    note = credit_note_create(invoice=paid, actor=STAFF, outcome="credit_balance")

    assert note.total == Decimal("10.73")
    assert customer_balance(customer=californian, currency="USD") == Decimal("50.00")
    credited = balance_transactions(customer=californian).first()
    assert credited is not None
    assert (credited.kind, credited.amount, credited.credit_note, credited.invoice) == (
        "credit_note",
        Decimal("10.73"),
        note,
        paid,
    )
    paid.refresh_from_db()
    assert (paid.status, paid.credited_total, paid.amount_due) == ("paid", 0, 0)


def test_chosen_lines_with_their_tax_and_the_last_of_a_line_takes_the_last_of_its_tax(
    invoice: Invoice,
) -> None:
    basic, _ = _lines(invoice)

    first = credit_note_create(
        invoice=invoice, actor=STAFF, outcome="credit_balance", lines=[(basic, Decimal("5.00"))]
    )
    second = credit_note_create(
        invoice=invoice, actor=STAFF, outcome="credit_balance", lines=[(basic, Decimal("5.00"))]
    )

    assert _note_lines(first) == [("Basic", Decimal("5.00"), Decimal("0.36"), Decimal("5.36"))]
    # 5.00 x 7.25% = 0.3625 -> 0.36 again would leave a cent of tax never credited.
    assert _note_lines(second) == [("Basic", Decimal("5.00"), Decimal("0.37"), Decimal("5.37"))]
    assert first.total + second.total == Decimal("10.73")
    assert [first.number, second.number] == ["CN-2026-000001", "CN-2026-000002"]
    assert invoice_line_creditable(invoice=invoice)[basic.pk].total == 0
    assert customer_balance(customer=invoice.customer, currency="USD") == Decimal("10.73")


def test_an_amount_is_spread_in_proportion_to_the_line_totals(invoice: Invoice) -> None:
    note = credit_note_create(
        invoice=invoice, actor=STAFF, outcome="reduce_amount_due", amount=Decimal("10.00")
    )

    # 10.00 x 10.73 / 32.18 = 3.334 -> 3.33 and the rest, 6.67, on the last line; each share
    # holds its tax: 3.33 / 1.0725 = 3.10 + 0.23, 6.67 / 1.0725 = 6.22 + 0.45.
    assert _note_lines(note) == [
        ("Basic", Decimal("3.10"), Decimal("0.23"), Decimal("3.33")),
        ("Premium", Decimal("6.22"), Decimal("0.45"), Decimal("6.67")),
    ]
    assert (note.subtotal, note.tax_amount, note.total) == (
        Decimal("9.32"),
        Decimal("0.68"),
        Decimal("10.00"),
    )
    invoice.refresh_from_db()
    assert (invoice.amount_due, invoice.status) == (Decimal("22.18"), "open")


def test_the_remainder_of_a_spread_goes_on_the_last_line(
    make_customer: Callable[..., Customer], make_invoice: MakeInvoice
) -> None:
    customer = make_customer(currency="JPY")
    invoice = make_invoice(customer, line("A", "1000"), line("B", "1000"), line("C", "1000"))

    note = credit_note_create(
        invoice=invoice, actor=STAFF, outcome="reduce_amount_due", amount=Decimal("1000")
    )

    assert [row[1] for row in _note_lines(note)] == [Decimal(333), Decimal(333), Decimal(334)]


def test_inclusive_tax_is_split_out_of_the_credit(briton: Customer, make_invoice: MakeInvoice):
    invoice = make_invoice(briton, line("Digital", "12.00"))
    (digital,) = _lines(invoice)

    note = credit_note_create(
        invoice=invoice, actor=STAFF, outcome="reduce_amount_due", lines=[(digital, Decimal("6"))]
    )

    assert _note_lines(note) == [("Digital", Decimal("6.00"), Decimal("1.00"), Decimal("6.00"))]
    assert (note.subtotal, note.tax_amount, note.total) == (
        Decimal("6.00"),
        Decimal("1.00"),
        Decimal("6.00"),
    )


def test_an_invoice_with_a_credit_line_is_credited_up_to_its_total(
    customer: Customer, make_invoice: MakeInvoice
) -> None:
    invoice = make_invoice(
        customer,
        line("Unused Silver", "10.00", kind="proration_credit", proration=(1, 1)),
        line("Gold", "30.00", kind="proration_charge"),
    )
    credit_row, gold = _lines(invoice)

    with pytest.raises(ValidationError) as credit_line_refused:
        credit_note_create(
            invoice=invoice,
            actor=STAFF,
            outcome="reduce_amount_due",
            lines=[(credit_row, Decimal("1.00"))],
        )
    with pytest.raises(ValidationError) as beyond_total_refused:
        credit_note_create(
            invoice=invoice,
            actor=STAFF,
            outcome="reduce_amount_due",
            lines=[(gold, Decimal("25.00"))],
        )
    note = credit_note_create(invoice=invoice, actor=STAFF, outcome="reduce_amount_due")

    assert (credit_line_refused.value.code, credit_line_refused.value.param) == (
        "credit_exceeds_line",
        "lines[0].amount",
    )
    assert beyond_total_refused.value.code == "credit_exceeds_invoice"
    assert _note_lines(note) == [("Gold", Decimal("20.00"), 0, Decimal("20.00"))]


def test_over_crediting_is_refused_and_changes_nothing(invoice: Invoice) -> None:
    basic, premium = _lines(invoice)
    credit_note_create(invoice=invoice, actor=STAFF, outcome="credit_balance", amount=Decimal("30"))
    left = invoice_creditable_total(invoice=invoice)
    assert left == Decimal("2.18")
    before = (
        CreditNote.objects.count(),
        AuditLog.objects.count(),
        customer_balance(customer=invoice.customer, currency="USD"),
    )

    attempts: list[dict[str, Any]] = [
        {"amount": Decimal("2.19")},
        {"lines": [(basic, Decimal("0.69"))]},  # 0.68 of it is left before tax
        {"lines": [(basic, Decimal("0.68")), (premium, Decimal("1.36"))]},
    ]
    codes = []
    for attempt in attempts:
        with pytest.raises(ValidationError) as refused:
            credit_note_create(invoice=invoice, actor=STAFF, outcome="credit_balance", **attempt)
        codes.append(refused.value.code)

    assert codes == ["credit_exceeds_invoice", "credit_exceeds_line", "credit_exceeds_line"]
    assert (
        CreditNote.objects.count(),
        AuditLog.objects.count(),
        customer_balance(customer=invoice.customer, currency="USD"),
    ) == before
    assert DocumentSequence.objects.get(kind="credit_note").next_number == 2
    credit_note_create(invoice=invoice, actor=STAFF, outcome="credit_balance")
    with pytest.raises(ValidationError) as nothing_left:
        credit_note_create(invoice=invoice, actor=STAFF, outcome="credit_balance")
    assert nothing_left.value.code == "nothing_to_credit"
    assert sum(note.total for note in credit_notes_for_invoice(invoice=invoice)) == Decimal("32.18")


def test_reducing_the_amount_due_stops_at_what_is_due(
    californian: Customer, make_invoice: MakeInvoice
) -> None:
    customer_balance_adjust(
        customer=californian, currency="USD", amount=Decimal("30"), kind="adjustment", actor=STAFF
    )
    invoice = make_invoice(californian, line("Basic", "10.00"), line("Premium", "20.00"))
    assert invoice.amount_due == Decimal("2.18")

    with pytest.raises(ValidationError) as refused:
        credit_note_create(
            invoice=invoice, actor=STAFF, outcome="reduce_amount_due", amount=Decimal("5.00")
        )
    note = credit_note_create(
        invoice=invoice, actor=STAFF, outcome="reduce_amount_due", amount=Decimal("2.18")
    )

    assert (refused.value.code, refused.value.param) == ("credit_exceeds_amount_due", "amount")
    invoice.refresh_from_db()
    assert (note.total, invoice.amount_due, invoice.status) == (Decimal("2.18"), 0, "paid")


def test_a_paid_invoice_has_no_amount_due_to_reduce(customer: Customer, make_invoice: MakeInvoice):
    customer_balance_adjust(
        customer=customer, currency="USD", amount=Decimal("10"), kind="adjustment", actor=STAFF
    )
    paid = make_invoice(customer, line("Basic", "10.00"))

    with pytest.raises(ConflictError) as refused:
        credit_note_create(invoice=paid, actor=STAFF, outcome="reduce_amount_due")

    assert (refused.value.code, refused.value.param) == ("invoice_not_open", "outcome")


@pytest.mark.parametrize("status", ["draft", "void", "uncollectible"])
def test_only_an_issued_invoice_is_credited(
    customer: Customer, make_invoice: MakeInvoice, status: str
) -> None:
    invoice = make_invoice(customer, finalize=status != "draft")
    if status == "void":
        invoice_void(invoice=invoice, actor=STAFF)
    elif status == "uncollectible":
        invoice_mark_uncollectible(invoice=invoice, actor=STAFF)

    with pytest.raises(ConflictError) as refused:
        credit_note_create(invoice=invoice, actor=STAFF, outcome="credit_balance")

    assert refused.value.code == "invoice_not_creditable"
    assert not CreditNote.objects.exists()


@pytest.mark.parametrize(
    ("kwargs", "code", "param"),
    [
        ({"outcome": "refund"}, "refund_exceeds_payments", "outcome"),
        ({"outcome": "cash"}, "invalid_outcome", "outcome"),
        ({"outcome": "credit_balance", "reason": "mood"}, "invalid_reason", "reason"),
        (
            {"outcome": "credit_balance", "amount": Decimal("1"), "lines": []},
            "lines_and_amount",
            "amount",
        ),
        ({"outcome": "credit_balance", "lines": []}, "no_lines", "lines"),
        ({"outcome": "credit_balance", "amount": Decimal("0")}, "invalid_amount", "amount"),
        ({"outcome": "credit_balance", "amount": Decimal("1.001")}, "invalid_amount", "amount"),
    ],
)
def test_bad_credit_note_input_is_refused(
    invoice: Invoice, kwargs: dict[str, Any], code: str, param: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        credit_note_create(invoice=invoice, actor=STAFF, **kwargs)

    assert (refused.value.code, refused.value.param) == (code, param)
    assert not CreditNote.objects.exists()


def test_lines_of_another_invoice_or_twice_the_same_are_refused(
    invoice: Invoice, californian: Customer, make_invoice: MakeInvoice
) -> None:
    other = make_invoice(californian, line("Other", "5.00"))
    basic, _ = _lines(invoice)

    with pytest.raises(ValidationError) as foreign:
        credit_note_create(
            invoice=invoice,
            actor=STAFF,
            outcome="credit_balance",
            lines=[(basic, Decimal("1")), (other.lines.get(), Decimal("1"))],
        )
    with pytest.raises(ValidationError) as twice:
        credit_note_create(
            invoice=invoice,
            actor=STAFF,
            outcome="credit_balance",
            lines=[(basic, Decimal("1")), (basic, Decimal("1"))],
        )

    assert (foreign.value.code, foreign.value.param) == (
        "line_not_on_invoice",
        "lines[1].invoice_line",
    )
    assert (twice.value.code, twice.value.param) == ("duplicate_line", "lines[1].invoice_line")


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    amounts=st.lists(
        st.decimals(min_value="0.01", max_value="500", places=2), min_size=1, max_size=5
    ),
    fraction=st.fractions(min_value=0, max_value=1),
)
def test_a_spread_adds_up_exactly_and_stays_within_each_line(
    make_customer: Callable[..., Customer],
    california_tax: Any,
    make_invoice: MakeInvoice,
    amounts: list[Decimal],
    fraction: Any,
) -> None:
    customer = make_customer(currency="USD", country="US", region="CA")
    invoice = make_invoice(
        customer, *[line(f"Line {i}", str(amount)) for i, amount in enumerate(amounts)]
    )
    lump = (invoice.total * fraction.numerator / fraction.denominator).quantize(Decimal("0.01"))
    if lump <= 0:
        lump = Decimal("0.01")

    note = credit_note_create(invoice=invoice, actor=STAFF, outcome="credit_balance", amount=lump)

    rows = list(note.lines.all())
    assert note.total == lump == sum(row.total for row in rows)
    assert note.subtotal == sum(row.amount for row in rows)
    assert note.tax_amount == sum(row.tax_amount for row in rows)
    for row in rows:
        assert row.invoice_line is not None
        assert 0 < row.amount <= row.invoice_line.amount
        assert 0 <= row.tax_amount <= row.invoice_line.tax_amount
        assert row.total == row.amount + row.tax_amount
    assert invoice_creditable_total(invoice=invoice) == invoice.total - lump
    assert all(left.total >= 0 for left in invoice_line_creditable(invoice=invoice).values())
