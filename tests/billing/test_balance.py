"""The customer credit balance: every movement recorded, never below zero."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from billing.models import CustomerBalance, CustomerBalanceTransaction
from billing.selectors import balance_transactions, customer_balance, customer_balance_currency
from billing.services import customer_balance_adjust
from core.errors import ValidationError
from core.models import AuditLog
from customers.models import Customer
from tests.billing.conftest import STAFF
from tests.conftest import FIXED_NOW

pytestmark = pytest.mark.django_db


def _adjust(customer: Customer, amount: Any, **kwargs: Any) -> CustomerBalanceTransaction:
    kwargs.setdefault("currency", "USD")
    kwargs.setdefault("kind", "adjustment")
    return customer_balance_adjust(customer=customer, amount=amount, actor=STAFF, **kwargs)


def test_a_customer_without_movements_has_a_zero_balance(customer: Customer) -> None:
    assert customer_balance(customer=customer, currency="USD") == 0
    assert not CustomerBalance.objects.exists()


def test_credits_and_uses_are_recorded_with_the_balance_after_each(customer: Customer) -> None:
    _adjust(customer, Decimal("10.00"), memo="Goodwill for the outage")
    _adjust(customer, Decimal("-3.50"))

    assert customer_balance(customer=customer, currency="USD") == Decimal("6.50")
    movements = [
        (t.kind, t.amount, t.balance_after, t.memo, t.created_at)
        for t in balance_transactions(customer=customer)
    ]
    assert movements == [
        ("adjustment", Decimal("-3.50"), Decimal("6.50"), "", FIXED_NOW),
        ("adjustment", Decimal("10.00"), Decimal("10.00"), "Goodwill for the outage", FIXED_NOW),
    ]
    entries = AuditLog.objects.filter(action="customer_balance.adjust").order_by("id")
    snapshots = [(e.before or {}, e.after or {}) for e in entries]
    assert [(before["amount"], after["amount"]) for before, after in snapshots] == [
        ("0.0000", "10.0000"),
        ("10.0000", "6.5000"),
    ]
    assert snapshots[1][1]["transaction"]["amount"] == "-3.50"


def test_the_balance_never_goes_below_zero(customer: Customer) -> None:
    _adjust(customer, Decimal("5.00"))

    with pytest.raises(ValidationError) as refused:
        _adjust(customer, Decimal("-5.01"))

    assert (refused.value.code, refused.value.param) == ("insufficient_balance", "amount")
    assert customer_balance(customer=customer, currency="USD") == Decimal("5.00")
    assert CustomerBalanceTransaction.objects.count() == 1
    _adjust(customer, Decimal("-5.00"))
    assert customer_balance(customer=customer, currency="USD") == 0


@pytest.mark.parametrize(
    ("amount", "kwargs", "code", "param"),
    [
        (Decimal("0"), {}, "invalid_amount", "amount"),
        (Decimal("0.001"), {}, "invalid_amount", "amount"),
        (1.5, {}, "invalid_amount", "amount"),
        (Decimal("1"), {"kind": "gift"}, "invalid_kind", "kind"),
        (Decimal("1"), {"currency": "EUR"}, "currency_mismatch", "currency"),
        (Decimal("1"), {"currency": "ZZZ"}, "invalid_currency", "currency"),
        (Decimal("1"), {"memo": "x" * 301}, "invalid_memo", "memo"),
    ],
)
def test_bad_adjustments_are_refused(
    customer: Customer, amount: Any, kwargs: dict[str, Any], code: str, param: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        _adjust(customer, amount, **kwargs)

    assert (refused.value.code, refused.value.param) == (code, param)
    assert not CustomerBalanceTransaction.objects.exists()
    assert not AuditLog.objects.filter(action="customer_balance.adjust").exists()


def test_balances_are_kept_per_currency(make_customer: Callable[..., Customer]) -> None:
    customer = make_customer()  # no billing currency yet

    _adjust(customer, Decimal("500"), currency="JPY")

    assert customer_balance(customer=customer, currency="JPY") == Decimal("500")
    assert customer_balance(customer=customer, currency="USD") == 0
    assert customer_balance_currency(customer=customer) == "JPY"
