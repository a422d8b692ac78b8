from __future__ import annotations

from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from rest_framework.test import APIClient

from backoffice.demo import DEMO_API_KEY, DEMO_LOGINS
from catalog.models import Coupon, Plan, Price, PriceList, TaxRate
from catalog.selectors import price_for, tax_rate_for
from core.models import AuditLog
from customers.models import Customer

pytestmark = pytest.mark.django_db


def _seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def test_seed_builds_the_demo_business(clock: Any) -> None:
    output = _seed()

    assert "Demo data created" in output
    assert DEMO_API_KEY in output
    codes = set(Plan.objects.values_list("code", flat=True))
    for tier in ("bronze", "silver", "gold"):
        assert {f"digital-{tier}-monthly", f"digital-{tier}-annual"} <= codes
    gold = Plan.objects.get(code="digital-gold-monthly")
    assert [p.kind for p in gold.phases.all()] == ["trial", "discount", "evergreen"]
    evergreen = gold.phases.get(kind="evergreen")
    for currency, amount in {"USD": "19.99", "EUR": "18.99", "GBP": "16.99", "JPY": "2800"}.items():
        price = price_for(phase=evergreen, currency=currency)
        assert price is not None
        assert price.amount == Decimal(amount)
    assert Price.objects.filter(setup_fee__gt=0).exists()
    assert set(PriceList.objects.values_list("kind", flat=True)) == {
        "default",
        "geography",
        "segment",
        "partner",
    }
    assert Coupon.objects.count() == 4
    california = tax_rate_for(country="US", region="CA")
    assert california is not None
    assert california.percentage == Decimal("7.25")
    assert TaxRate.objects.get(country="GB").inclusive is True
    assert Customer.objects.filter(partner__code="telco-one").count() == 1
    assert AuditLog.objects.filter(actor_label="seed_demo").exists()


def test_seed_twice_duplicates_nothing(clock: Any) -> None:
    _seed()
    counts = (Plan.objects.count(), Customer.objects.count(), Price.objects.count())

    output = _seed()

    assert "already present" in output
    assert (Plan.objects.count(), Customer.objects.count(), Price.objects.count()) == counts


def test_demo_logins_and_api_key_work(clock: Any) -> None:
    _seed()

    for login in DEMO_LOGINS:
        assert authenticate(username=login.username, password=login.password) is not None
    reader = Customer.objects.get(external_id="demo-reader")
    assert reader.user is not None
    assert reader.user.username == "reader@example.com"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {DEMO_API_KEY}")
    response = client.get("/api/v1/test_clock")
    assert response.status_code == 200
