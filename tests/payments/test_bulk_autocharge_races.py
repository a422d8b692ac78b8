"""A batch's successes are recorded from the attempts as they are under the lock, not as the
claim left them: another writer (a webhook, the sweeper, a retry) may have been there between
the claim and the record. And what a batch announces is what one invoice's charge would."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from billing.models import Invoice, Payment, PaymentAttempt, PaymentMethod
from billing.services.payments import (
    AUTOCHARGE,
    _charge_many,
    _Claim,
    _claim_many,
    _record,
    _record_many,
)
from billing.webhook_payloads import invoice_payload
from catalog.services import coupon_create
from core.models import AuditLog
from core.webhooks.models import OutboxEvent
from customers.models import Customer

from .conftest import STAFF, VISA, line

pytestmark = pytest.mark.django_db

MakeCustomer = Callable[..., Customer]
SaveCard = Callable[..., PaymentMethod]
Bill = Callable[..., Invoice]


def _claimed(
    make_customer: MakeCustomer, save_card: SaveCard, bill: Bill, count: int
) -> list[_Claim]:
    """Claims of `count` open invoices (billed before their card is saved, so not charged)."""
    queue = []
    for position in range(count):
        customer = make_customer()
        queue.append((position, bill(customer, line("Digital monthly", "31.00")).pk))
        save_card(customer, VISA)
    claims, waiting = _claim_many(queue, actor=AUTOCHARGE)
    assert waiting == []
    assert len(claims) == count
    return claims


def _audited(action: str, attempt: PaymentAttempt) -> tuple[dict[str, Any], dict[str, Any]]:
    """The before and after of the attempt's one audit entry of `action`."""
    entry = AuditLog.objects.get(action=action, object_id=str(attempt.pk))
    return entry.before or {}, entry.after or {}


def test_an_attempt_written_after_its_claim_is_recorded_from_the_row_as_it_is(
    make_customer: MakeCustomer, save_card: SaveCard, bill: Bill
) -> None:
    # given a batch of two charged, and one attempt rewritten by another writer meanwhile
    # (its outcome found unknown, then claimed again: a new claim time and an error message)
    untouched, rewritten = _claimed(make_customer, save_card, bill, 2)
    results = _charge_many([untouched, rewritten])
    claimed_again = timezone.now()
    PaymentAttempt.objects.filter(pk=rewritten.attempt.pk).update(
        error_message="The gateway did not answer in time.", claimed_at=claimed_again
    )

    # when the batch records its outcomes
    _record_many([untouched, rewritten], results, actor=AUTOCHARGE)

    # then both succeeded, the rewritten one audited from the row it had under the lock
    for claim in (untouched, rewritten):
        attempt = PaymentAttempt.objects.get(pk=claim.attempt.pk)
        assert (attempt.status, attempt.error_message) == ("succeeded", "")
        assert Payment.objects.get(attempt=attempt).amount == Decimal("31.00")
    before, after = _audited("payment_attempt.succeeded", rewritten.attempt)
    assert before["error_message"] == "The gateway did not answer in time."
    assert before["claimed_at"] == after["claimed_at"] == str(claimed_again)
    assert (after["error_message"], after["status"]) == ("", "succeeded")
    # and the untouched one from its claim, the same as a read would have given
    before, _ = _audited("payment_attempt.succeeded", untouched.attempt)
    assert before == _audited("payment_attempt.create", untouched.attempt)[1]
    assert before["status"] == "pending"


def test_an_attempt_settled_after_its_claim_is_not_recorded_again(
    make_customer: MakeCustomer, save_card: SaveCard, bill: Bill, balance: Any
) -> None:
    # given a batch of two charged, one of which a late webhook already recorded
    first, settled = _claimed(make_customer, save_card, bill, 2)
    results = _charge_many([first, settled])
    _record(settled.attempt.pk, results[settled.attempt.pk], actor=AUTOCHARGE)

    # when the batch records its outcomes
    _record_many([first, settled], results, actor=AUTOCHARGE)

    # then each is paid once
    assert sorted(Payment.objects.values_list("attempt_id", flat=True)) == sorted(
        [first.attempt.pk, settled.attempt.pk]
    )
    assert balance("cash") == Decimal("62.00")
    assert AuditLog.objects.filter(action="payment_attempt.succeeded").count() == 2


def test_the_invoice_paid_by_a_batch_is_announced_with_its_lines_as_the_api_shows_them(
    make_customer: MakeCustomer, save_card: SaveCard, bill: Bill
) -> None:
    # given an invoice with a discounted line and a plain one, and another invoice
    coupon = coupon_create(
        code="half",
        name="Half",
        discount_type="percent",
        duration="forever",
        percent_off=50,
        actor=STAFF,
    )
    customer = make_customer()
    discounted = bill(
        customer, line("Digital monthly", "31.00", coupon_id=coupon.pk), line("Seats", "4.50")
    )
    save_card(customer, VISA)
    (other,) = _claimed(make_customer, save_card, bill, 1)
    claims, _ = _claim_many([(0, discounted.pk)], actor=AUTOCHARGE)
    claims = [*claims, other]

    # when the batch records their charges
    _record_many(claims, _charge_many(claims), actor=AUTOCHARGE)

    # then each paid invoice is announced as the API represents it, lines and coupon included
    for invoice_id in (discounted.pk, other.attempt.invoice_id):
        paid = Invoice.objects.get(pk=invoice_id)
        (payload,) = OutboxEvent.objects.filter(
            type="invoice.paid", payload__id=invoice_id
        ).values_list("payload", flat=True)
        assert payload == invoice_payload(paid)
    assert [entry["coupon"] for entry in invoice_payload(discounted)["lines"]] == ["half", None]
