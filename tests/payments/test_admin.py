"""The admin shows payments read-only and settles unknown outcomes through the services."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest
from django.test import Client

from billing.models import Invoice, Payment, PaymentAttempt, PaymentMethod
from billing.services import invoice_pay_now, payment_record_offline, refund_create
from customers.models import Customer

from .conftest import STAFF, TIMEOUT, VISA, line

pytestmark = pytest.mark.django_db


def test_the_payment_pages_render_and_cannot_edit(
    admin_client: Client,
    make_customer: Callable[..., Customer],
    save_card: Callable[..., PaymentMethod],
    bill: Callable[..., Invoice],
) -> None:
    customer = make_customer()
    method = save_card(customer, VISA)
    bill(customer, line("Digital monthly", "31.00"))
    payment = Payment.objects.get()
    refund = refund_create(payment=payment, amount=None, actor=STAFF)
    pages = {
        "paymentmethod": method.pk,
        "paymentattempt": PaymentAttempt.objects.get().pk,
        "payment": payment.pk,
        "refund": refund.pk,
    }

    for model, pk in pages.items():
        listing = admin_client.get(f"/admin/billing/{model}/")
        page = admin_client.get(f"/admin/billing/{model}/{pk}/change/")
        assert (listing.status_code, page.status_code) == (200, 200), model
        assert 'name="_save"' not in page.content.decode()
        assert admin_client.get(f"/admin/billing/{model}/add/").status_code == 403
    for model in ("dispute", "stripeevent"):
        assert admin_client.get(f"/admin/billing/{model}/").status_code == 200
    assert (
        VISA
        not in admin_client.get(
            f"/admin/billing/paymentmethod/{method.pk}/change/"
        ).content.decode()
    )


def test_the_reconcile_action_settles_an_unknown_outcome(
    admin_client: Client,
    make_customer: Callable[..., Customer],
    save_card: Callable[..., PaymentMethod],
    bill: Callable[..., Invoice],
) -> None:
    customer = make_customer(autocharge=False)
    save_card(customer, TIMEOUT)
    invoice = bill(customer, line("Digital monthly", "31.00"))
    attempt = invoice_pay_now(invoice=invoice, actor=STAFF)
    assert attempt.status == "unknown"

    response = admin_client.post(
        "/admin/billing/paymentattempt/",
        {"action": "reconcile", "_selected_action": [str(attempt.pk)]},
        follow=True,
    )

    assert [str(m) for m in response.context["messages"]] == [f"{attempt}: succeeded"]
    invoice.refresh_from_db()
    assert invoice.status == "paid"
    # An offline payment is refused now: nothing is due.
    with pytest.raises(Exception, match="only an open invoice is paid"):
        payment_record_offline(
            invoice=invoice,
            amount=invoice.total,
            method="cheque",
            reference="",
            received_on=date(2026, 1, 15),
            actor=STAFF,
        )
