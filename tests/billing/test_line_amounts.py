"""The money of an invoice line: rounding once, coupons, taxes, and totals that add up."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.models import Invoice, InvoiceLine
from billing.services import LineSpec, invoice_create, invoice_preview
from catalog.models import Coupon
from core.errors import ValidationError
from core.money import quantum
from customers.models import Customer
from tests.billing.conftest import STAFF, line

pytestmark = pytest.mark.django_db

MakeInvoice = Callable[..., Invoice]


def _amounts(invoice: Invoice) -> list[tuple[Decimal, Decimal, Decimal, Decimal]]:
    return [
        (row.amount, row.discount_amount, row.tax_amount, row.total)
        for row in invoice.lines.order_by("position")
    ]


def _totals(invoice: Invoice) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    return (invoice.subtotal, invoice.discount_total, invoice.tax_total, invoice.total)


# --- rounding once per line ---------------------------------------------------------------------


def test_a_prorated_line_is_rounded_once_half_up(customer: Customer, make_invoice: MakeInvoice):
    invoice = make_invoice(
        customer,
        line(
            unit_amount="10.00",
            proration=(17, 31),
            period_start=date(2026, 1, 15),
            period_end=date(2026, 2, 1),
        ),
    )

    (row,) = invoice.lines.all()
    assert row.amount == Decimal("5.48")  # 10.00 x 17 / 31 = 5.48387...
    assert (row.proration_days, row.period_days) == (17, 31)
    assert (row.period_start, row.period_end) == (date(2026, 1, 15), date(2026, 2, 1))
    assert _totals(invoice) == (Decimal("5.48"), 0, 0, Decimal("5.48"))


def test_half_a_cent_rounds_up_not_to_even(customer: Customer, make_invoice: MakeInvoice):
    invoice = make_invoice(customer, line(unit_amount="0.25", proration=(1, 2)))

    assert invoice.lines.get().amount == Decimal("0.13")  # 0.125, banker's rounding says 0.12


def test_a_full_period_is_exactly_quantity_times_unit_amount(
    customer: Customer, make_invoice: MakeInvoice
):
    invoice = make_invoice(customer, line(unit_amount="9.99", quantity=Decimal(3)))

    (row,) = invoice.lines.all()
    assert (row.quantity, row.unit_amount, row.amount) == (3, Decimal("9.99"), Decimal("29.97"))


def test_quantity_and_proration_are_multiplied_before_the_single_rounding(
    customer: Customer, make_invoice: MakeInvoice
):
    # Rounding 9.99 x 10 / 31 = 3.2225... first and then x 3 would give 9.66.
    invoice = make_invoice(
        customer, line(unit_amount="9.99", quantity=Decimal(3), proration=(10, 31))
    )

    assert invoice.lines.get().amount == Decimal("9.67")  # 29.97 x 10 / 31 = 9.6677...


def test_jpy_has_no_decimals(make_customer: Callable[..., Customer], make_invoice: MakeInvoice):
    customer = make_customer(currency="JPY")

    invoice = make_invoice(customer, line(unit_amount="1000", proration=(10, 31)))

    assert invoice.lines.get().amount == Decimal("323")  # 322.58...
    assert invoice.total == Decimal("323")


def test_kwd_has_three_decimals(make_customer: Callable[..., Customer], make_invoice: MakeInvoice):
    customer = make_customer(currency="KWD")

    invoice = make_invoice(customer, line(unit_amount="12.345", proration=(7, 30)))

    assert invoice.lines.get().amount == Decimal("2.881")  # exactly 2.8805, half up


def test_a_proration_credit_is_negative(customer: Customer, make_invoice: MakeInvoice):
    invoice = make_invoice(
        customer,
        line(unit_amount="10.00", proration=(17, 31), kind=InvoiceLine.Kind.PRORATION_CREDIT),
        line(unit_amount="20.00", proration=(17, 31), kind=InvoiceLine.Kind.PRORATION_CHARGE),
        finalize=False,
    )

    assert [row[0] for row in _amounts(invoice)] == [Decimal("-5.48"), Decimal("10.97")]
    assert invoice.total == Decimal("5.49")


def test_a_given_unrounded_amount_replaces_quantity_times_unit(
    customer: Customer, make_invoice: MakeInvoice
):
    usage = line(
        "API calls",
        unit_amount="0.0010",
        quantity=Decimal(12345),
        amount=Decimal("12.3456"),
        kind=InvoiceLine.Kind.USAGE,
    )

    invoice = make_invoice(customer, usage)

    (row,) = invoice.lines.all()
    assert (row.amount, row.unit_amount, row.quantity) == (
        Decimal("12.35"),
        Decimal("0.0010"),
        Decimal("12345"),
    )


def test_a_given_amount_keeps_its_precise_quantity_only_as_a_description(
    customer: Customer, make_invoice: MakeInvoice
):
    usage = line(
        "Storage",
        unit_amount="0.123456",
        quantity=Decimal("2.000049"),
        amount=Decimal("0.24691"),
        kind=InvoiceLine.Kind.USAGE,
    )

    invoice = make_invoice(customer, usage)

    (row,) = invoice.lines.all()
    assert (row.amount, row.quantity, row.unit_amount) == (
        Decimal("0.25"),
        Decimal("2.0000"),
        Decimal("0.1235"),
    )


def test_a_zero_amount_line_is_billed_as_zero(customer: Customer, make_invoice: MakeInvoice):
    invoice = make_invoice(customer, line("Trial", unit_amount="0"))

    assert invoice.lines.get().amount == 0
    assert invoice.status == Invoice.Status.PAID


# --- coupons ------------------------------------------------------------------------------------


def test_a_percent_coupon_discounts_charges_and_credits_alike(
    customer: Customer, make_invoice: MakeInvoice, percent_coupon: Coupon
):
    invoice = make_invoice(
        customer,
        line(unit_amount="19.99", coupon_id=percent_coupon.pk),
        line(
            unit_amount="19.99",
            proration=(10, 31),
            kind=InvoiceLine.Kind.PRORATION_CREDIT,
            coupon_id=percent_coupon.pk,
        ),
        line("No coupon", unit_amount="1.00"),
    )

    assert _amounts(invoice) == [
        (Decimal("19.99"), Decimal("5.00"), 0, Decimal("14.99")),  # 4.9975 -> 5.00
        (Decimal("-6.45"), Decimal("-1.61"), 0, Decimal("-4.84")),  # -1.6125 -> -1.61
        (Decimal("1.00"), 0, 0, Decimal("1.00")),
    ]
    assert _totals(invoice) == (Decimal("14.54"), Decimal("3.39"), 0, Decimal("11.15"))
    assert invoice.lines.order_by("position").first().coupon == percent_coupon  # type: ignore[union-attr]


def test_a_fixed_coupon_applies_once_per_invoice_in_line_order_never_to_credits(
    customer: Customer, make_invoice: MakeInvoice, fixed_coupon: Coupon
):
    invoice = make_invoice(
        customer,
        line(unit_amount="3.00", coupon_id=fixed_coupon.pk),
        line(
            unit_amount="2.00",
            kind=InvoiceLine.Kind.PRORATION_CREDIT,
            proration=(1, 1),
            coupon_id=fixed_coupon.pk,
        ),
        line(unit_amount="4.00", coupon_id=fixed_coupon.pk),
        line(unit_amount="6.00", coupon_id=fixed_coupon.pk),
    )

    assert [row[1] for row in _amounts(invoice)] == [
        Decimal("3.00"),  # capped at the line
        0,  # never off a credit
        Decimal("2.00"),  # the rest of the 5.00
        0,  # used up
    ]
    assert invoice.discount_total == Decimal("5.00")
    assert invoice.total == Decimal("6.00")


def test_a_fixed_coupon_takes_its_amount_in_the_invoice_currency(
    make_customer: Callable[..., Customer], make_invoice: MakeInvoice, fixed_coupon: Coupon
):
    customer = make_customer(currency="JPY")

    invoice = make_invoice(customer, line(unit_amount="1200", coupon_id=fixed_coupon.pk))

    assert _amounts(invoice) == [(Decimal("1200"), Decimal("500"), 0, Decimal("700"))]


def test_a_fixed_coupon_without_an_amount_in_the_currency_is_refused(
    make_customer: Callable[..., Customer], fixed_coupon: Coupon, clock: Any
):
    customer = make_customer(currency="EUR")

    with pytest.raises(ValidationError) as refused:
        invoice_create(
            customer=customer,
            currency="EUR",
            billing_reason="subscription_cycle",
            lines=[line(coupon_id=fixed_coupon.pk)],
            actor=STAFF,
        )

    assert (refused.value.code, refused.value.param) == (
        "coupon_not_applicable",
        "lines[0].coupon_id",
    )
    assert not Invoice.objects.exists()


# --- taxes --------------------------------------------------------------------------------------


def test_exclusive_tax_is_added_per_line(californian: Customer, make_invoice: MakeInvoice):
    invoice = make_invoice(
        californian,
        line(unit_amount="10.00", proration=(17, 31)),
        line(unit_amount="10.00", proration=(17, 31), kind=InvoiceLine.Kind.PRORATION_CREDIT),
        line(unit_amount="100.00"),
        finalize=False,
    )

    assert _amounts(invoice) == [
        (Decimal("5.48"), 0, Decimal("0.40"), Decimal("5.88")),  # 0.3973 -> 0.40
        (Decimal("-5.48"), 0, Decimal("-0.40"), Decimal("-5.88")),
        (Decimal("100.00"), 0, Decimal("7.25"), Decimal("107.25")),
    ]
    assert _totals(invoice) == (Decimal("100.00"), 0, Decimal("7.25"), Decimal("107.25"))
    first = invoice.lines.order_by("position").first()
    assert first is not None
    assert (first.tax_percent, first.tax_inclusive, first.tax_rate is not None) == (
        Decimal("7.25"),
        False,
        True,
    )


def test_inclusive_tax_is_inside_the_amount(briton: Customer, make_invoice: MakeInvoice):
    invoice = make_invoice(briton, line(unit_amount="12.00"))

    assert _amounts(invoice) == [(Decimal("12.00"), 0, Decimal("2.00"), Decimal("12.00"))]
    assert _totals(invoice) == (Decimal("12.00"), 0, Decimal("2.00"), Decimal("12.00"))
    assert invoice.lines.get().tax_inclusive is True


def test_tax_is_on_the_discounted_amount(
    briton: Customer, make_invoice: MakeInvoice, percent_coupon: Coupon
):
    invoice = make_invoice(briton, line(unit_amount="12.00", coupon_id=percent_coupon.pk))

    assert _amounts(invoice) == [
        (Decimal("12.00"), Decimal("3.00"), Decimal("1.50"), Decimal("9.00"))
    ]


def test_the_regions_rate_applies_and_another_region_has_none(
    make_customer: Callable[..., Customer], california_tax: Any, make_invoice: MakeInvoice
):
    texan = make_customer(currency="USD", country="US", region="TX")

    invoice = make_invoice(texan, line(unit_amount="10.00"))

    assert _amounts(invoice) == [(Decimal("10.00"), 0, 0, Decimal("10.00"))]
    assert invoice.lines.get().tax_rate is None


# --- invoice totals equal the sum of rounded lines ----------------------------------------------

_line_strategy = st.tuples(
    st.sampled_from(["recurring", "proration_credit", "proration_charge", "usage"]),
    st.decimals(min_value=0, max_value=5000, places=4, allow_nan=False, allow_infinity=False),
    st.integers(min_value=1, max_value=20),
    st.one_of(
        st.none(),
        st.integers(min_value=28, max_value=366).flatmap(
            lambda days: st.tuples(st.integers(min_value=0, max_value=days), st.just(days))
        ),
    ),
    st.booleans(),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    currency=st.sampled_from(["USD", "JPY", "KWD"]),
    specs=st.lists(_line_strategy, min_size=1, max_size=6),
)
def test_invoice_totals_are_the_sums_of_lines_rounded_once(
    make_customer: Callable[..., Customer],
    percent_coupon: Coupon,
    california_tax: Any,
    currency: str,
    specs: list[tuple[str, Decimal, int, tuple[int, int] | None, bool]],
) -> None:
    customer = make_customer(currency=currency, country="US", region="CA")
    lines = [
        LineSpec(
            kind=kind,
            description=f"line {index}",
            unit_amount=unit_amount,
            quantity=Decimal(quantity),
            proration=proration,
            coupon_id=percent_coupon.pk if discounted else None,
        )
        for index, (kind, unit_amount, quantity, proration, discounted) in enumerate(specs)
    ]

    invoice = invoice_create(
        customer=customer,
        currency=currency,
        billing_reason="subscription_cycle",
        lines=lines,
        actor=STAFF,
        finalize=False,
    )

    rows = list(invoice.lines.order_by("position"))
    step = quantum(currency)
    for row, (kind, unit_amount, quantity, proration, _) in zip(rows, specs, strict=True):
        exact = unit_amount * quantity
        if proration is not None:
            exact = exact * proration[0] / proration[1]
        rounded = exact.quantize(step, rounding=ROUND_HALF_UP)
        assert row.amount == (-rounded if kind == "proration_credit" else rounded)
        for value in (row.amount, row.discount_amount, row.tax_amount, row.total):
            assert value == value.quantize(step)
        assert row.total == row.amount - row.discount_amount + row.tax_amount
    assert invoice.subtotal == sum(row.amount for row in rows)
    assert invoice.discount_total == sum(row.discount_amount for row in rows)
    assert invoice.tax_total == sum(row.tax_amount for row in rows)
    assert invoice.total == sum(row.total for row in rows)
    preview = invoice_preview(
        customer=customer, currency=currency, billing_reason="subscription_cycle", lines=lines
    )
    assert preview.invoice.total == invoice.total


# --- bad input is refused and nothing is written ------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "code", "param"),
    [
        (line(kind="rent"), "invalid_kind", "lines[0].kind"),
        (line(description="  "), "invalid_description", "lines[0].description"),
        (line(unit_amount="-1.00"), "invalid_amount", "lines[0].unit_amount"),
        (line(unit_amount="1.00001"), "invalid_amount", "lines[0].unit_amount"),
        (line(quantity=Decimal(-1)), "invalid_quantity", "lines[0].quantity"),
        (line(proration=(32, 31)), "invalid_proration", "lines[0].proration"),
        (line(proration=(1, 0)), "invalid_proration", "lines[0].proration"),
        (
            line(period_start=date(2026, 2, 1), period_end=date(2026, 2, 1)),
            "invalid_period",
            "lines[0].period_end",
        ),
        (line(period_start=date(2026, 2, 1)), "invalid_period", "lines[0].period_end"),
        (line(amount=Decimal("-1")), "invalid_amount", "lines[0].amount"),
        (line(coupon_id=999_999), "coupon_not_found", "lines[0].coupon_id"),
        (line(plan_id=999_999), "plan_not_found", "lines[0].plan_id"),
        (line(price_id=999_999), "price_not_found", "lines[0].price_id"),
        (LineSpec(kind="recurring", description="x", unit_amount=1.5), "invalid_amount", None),  # type: ignore[arg-type]
    ],
)
def test_a_bad_line_is_refused(
    customer: Customer, spec: LineSpec, code: str, param: str | None, clock: Any
) -> None:
    with pytest.raises(ValidationError) as refused:
        invoice_create(
            customer=customer,
            currency="USD",
            billing_reason="subscription_cycle",
            lines=[spec],
            actor=STAFF,
        )

    assert refused.value.code == code
    if param is not None:
        assert refused.value.param == param
    assert not Invoice.objects.exists()


def test_another_currency_than_the_customers_is_refused(customer: Customer, clock: Any) -> None:
    with pytest.raises(ValidationError) as refused:
        invoice_create(
            customer=customer,
            currency="EUR",
            billing_reason="subscription_cycle",
            lines=[line()],
            actor=STAFF,
        )

    assert (refused.value.code, refused.value.param) == ("currency_mismatch", "currency")


def test_an_invoice_without_lines_or_with_an_unknown_reason_is_refused(
    customer: Customer, clock: Any
) -> None:
    with pytest.raises(ValidationError) as no_lines:
        invoice_create(
            customer=customer,
            currency="USD",
            billing_reason="subscription_cycle",
            lines=[],
            actor=STAFF,
        )
    with pytest.raises(ValidationError) as bad_reason:
        invoice_create(
            customer=customer, currency="USD", billing_reason="whim", lines=[line()], actor=STAFF
        )

    assert no_lines.value.code == "no_lines"
    assert bad_reason.value.code == "invalid_billing_reason"
    assert not Invoice.objects.exists()
