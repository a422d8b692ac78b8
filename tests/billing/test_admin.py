"""The Django admin shows money documents and changes invoices only through the services."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from billing.models import CreditNote, DocumentSequence, Invoice
from billing.services import credit_note_create, customer_balance_adjust
from core.models import AuditLog
from customers.models import Customer
from tests.billing.conftest import STAFF, line

pytestmark = pytest.mark.django_db

MakeInvoice = Callable[..., Invoice]
CHANGELIST = "/admin/billing/invoice/"


def _act(client: Client, action: str, *invoices: Invoice) -> list[str]:
    response = client.post(
        CHANGELIST,
        {"action": action, "_selected_action": [str(i.pk) for i in invoices]},
        follow=True,
    )
    assert response.status_code == 200
    return [str(message) for message in response.context["messages"]]


def test_the_invoice_pages_show_the_lines_read_only(
    admin_client: Client, customer: Customer, make_invoice: MakeInvoice
) -> None:
    invoice = make_invoice(customer, line("Digital monthly", "9.99"))

    listing = admin_client.get(CHANGELIST)
    page = admin_client.get(f"{CHANGELIST}{invoice.pk}/change/")

    assert listing.status_code == page.status_code == 200
    assert "INV-2026-000001" in listing.content.decode()
    body = page.content.decode()
    assert "Digital monthly" in body
    assert f"/admin/billing/invoice/{invoice.pk}/pdf/" in body
    assert 'name="_save"' not in body  # nothing to edit
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403


def test_actions_finalize_void_and_write_off_through_the_services(
    admin_client: Client, admin_user: User, customer: Customer, make_invoice: MakeInvoice
) -> None:
    first = make_invoice(customer, finalize=False)
    second = make_invoice(customer, finalize=False)

    messages = _act(admin_client, "finalize", second, first)
    assert messages == ["2 invoice(s) finalized."]
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.number, second.number) == ("INV-2026-000001", "INV-2026-000002")
    entry = AuditLog.objects.filter(action="invoice.finalize").first()
    assert entry is not None
    assert (entry.actor_type, entry.actor_label) == ("user", admin_user.username)

    assert _act(admin_client, "void", first) == ["1 invoice(s) voided."]
    assert _act(admin_client, "mark_uncollectible", second) == [
        "1 invoice(s) marked uncollectible."
    ]
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == ("void", "uncollectible")


def test_a_refused_action_says_why_and_the_others_go_through(
    admin_client: Client, customer: Customer, make_invoice: MakeInvoice
) -> None:
    finalized = make_invoice(customer)
    draft = make_invoice(customer, finalize=False)

    messages = _act(admin_client, "finalize", finalized, draft)

    assert messages == [
        "1 invoice(s) finalized.",
        "INV-2026-000001: Invoice INV-2026-000001 is open; only a draft can be finalized.",
    ]
    draft.refresh_from_db()
    assert draft.number == "INV-2026-000002"


def test_the_actions_need_the_permission_to_change_invoices(
    client: Client, customer: Customer, make_invoice: MakeInvoice
) -> None:
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_invoice"))
    client.force_login(viewer)
    draft = make_invoice(customer, finalize=False)

    response = client.post(CHANGELIST, {"action": "finalize", "_selected_action": [draft.pk]})

    assert response.status_code == 200  # the changelist again, with "no action selected"
    draft.refresh_from_db()
    assert draft.status == "draft"


def test_the_pdf_downloads(
    admin_client: Client, customer: Customer, make_invoice: MakeInvoice
) -> None:
    invoice = make_invoice(customer)

    response = admin_client.get(f"{CHANGELIST}{invoice.pk}/pdf/")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == 'attachment; filename="INV-2026-000001.pdf"'
    assert response.content.startswith(b"%PDF-")


def test_drafts_can_be_deleted_and_finalized_invoices_cannot(
    admin_client: Client, customer: Customer, make_invoice: MakeInvoice
) -> None:
    draft = make_invoice(customer, finalize=False)
    finalized = make_invoice(customer)

    deleted = admin_client.post(f"{CHANGELIST}{draft.pk}/delete/", {"post": "yes"})
    refused = admin_client.get(f"{CHANGELIST}{finalized.pk}/delete/")

    assert deleted.status_code == 302
    assert not Invoice.objects.filter(pk=draft.pk).exists()
    assert AuditLog.objects.filter(action="invoice.delete", object_id=str(draft.pk)).exists()
    assert refused.status_code == 403
    assert Invoice.objects.filter(pk=finalized.pk).exists()


def test_credit_notes_and_balances_are_read_only(
    admin_client: Client, customer: Customer, make_invoice: MakeInvoice
) -> None:
    invoice = make_invoice(customer, line(unit_amount="9.99"))
    customer_balance_adjust(
        customer=customer, currency="USD", amount=Decimal("2"), kind="adjustment", actor=STAFF
    )
    note = credit_note_create(invoice=invoice, actor=STAFF, outcome="credit_balance")

    for model in ["creditnote", "customerbalance", "customerbalancetransaction"]:
        assert admin_client.get(f"/admin/billing/{model}/").status_code == 200
        assert admin_client.get(f"/admin/billing/{model}/add/").status_code == 403
    page = admin_client.get(f"/admin/billing/creditnote/{note.pk}/change/")
    assert page.status_code == 200
    assert "CN-2026-000001" in page.content.decode()
    assert 'name="_save"' not in page.content.decode()
    assert admin_client.post(f"/admin/billing/creditnote/{note.pk}/delete/").status_code == 403
    assert CreditNote.objects.count() == 1


def test_a_sequence_is_set_up_ahead_and_never_rewound(
    admin_client: Client, customer: Customer, make_invoice: MakeInvoice
) -> None:
    created = admin_client.post(
        "/admin/billing/documentsequence/add/",
        {"kind": "invoice", "name": "2026", "prefix": "NW-26-"},
    )
    assert created.status_code == 302
    sequence = DocumentSequence.objects.get()
    assert (sequence.prefix, sequence.next_number) == ("NW-26-", 1)
    assert AuditLog.objects.filter(action="documentsequence.create").exists()

    assert make_invoice(customer).number == "NW-26-000001"
    admin_client.post(
        f"/admin/billing/documentsequence/{sequence.pk}/change/",
        {"kind": "invoice", "name": "2026", "prefix": "XX-", "next_number": "1"},
    )
    sequence.refresh_from_db()
    assert (sequence.prefix, sequence.next_number) == ("NW-26-", 2)
    assert (
        admin_client.get(f"/admin/billing/documentsequence/{sequence.pk}/delete/").status_code
        == 403
    )
