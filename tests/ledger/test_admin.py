"""The ledger in the Django admin: visible with its balances and lines, never editable."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from billing.ledger.models import Account, JournalEntry
from billing.ledger.postings import post_invoice_finalized

pytestmark = pytest.mark.django_db


@pytest.fixture
def entry() -> JournalEntry:
    return post_invoice_finalized(
        key="invoice:1",
        currency="USD",
        effective_date=date(2026, 1, 15),
        receivable=Decimal("12.00"),
        deferred=Decimal("10.00"),
        tax=Decimal("2.00"),
        source_id=1,
        party="customer:1",
    )


def test_accounts_are_listed_with_their_balances(admin_client: Client, entry: JournalEntry) -> None:
    response = admin_client.get(reverse("admin:ledger_account_changelist"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "customer:1" in body
    assert "12.0000" in body
    assert 'href="/admin/ledger/account/add/"' not in body


def test_an_entry_shows_its_lines_read_only(admin_client: Client, entry: JournalEntry) -> None:
    response = admin_client.get(reverse("admin:ledger_journalentry_change", args=[entry.pk]))
    assert response.status_code == 200
    body = response.content.decode()
    assert "deferred_revenue USD" in body
    assert "tax_payable USD" in body
    assert 'name="_save"' not in body


def test_nothing_can_be_added_changed_or_deleted(admin_client: Client, entry: JournalEntry) -> None:
    account = Account.objects.get(code="tax_payable")
    assert admin_client.get(reverse("admin:ledger_journalentry_add")).status_code == 403
    assert admin_client.get(reverse("admin:ledger_account_add")).status_code == 403
    response = admin_client.post(
        reverse("admin:ledger_journalentry_delete", args=[entry.pk]), {"post": "yes"}
    )
    assert response.status_code == 403
    response = admin_client.post(
        reverse("admin:ledger_account_change", args=[account.pk]), {"party": "x"}
    )
    assert response.status_code == 403
    assert JournalEntry.objects.filter(pk=entry.pk).exists()
    assert Account.objects.get(pk=account.pk).party == ""


def test_schedules_are_listed(admin_client: Client) -> None:
    response = admin_client.get(reverse("admin:ledger_recognitionschedule_changelist"))
    assert response.status_code == 200
