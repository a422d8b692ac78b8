"""Django admin for invoices, credit notes, balances, numbering sequences and payments.

Money documents are read-only here: invoices change only through the services (the actions
finalize, void and mark uncollectible; deleting is for drafts), which lock, number, apply the
balance and write the audit log. Credit notes, balances and their transactions are shown, never
edited. A sequence's numbering is the one thing staff may set up by hand (a prefix for a new
year), never rewind. Payment methods, attempts, payments, refunds, disputes and Stripe events
are shown only; unknown charge outcomes can be settled and failed events processed again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from billing.models import (
    CreditNote,
    CreditNoteLine,
    CustomerBalance,
    CustomerBalanceTransaction,
    Dispute,
    DocumentSequence,
    Invoice,
    InvoiceLine,
    Payment,
    PaymentAttempt,
    PaymentMethod,
    Refund,
    StripeEvent,
)
from billing.pdf import invoice_pdf, invoice_pdf_filename
from billing.services import (
    invoice_delete_draft,
    invoice_finalize,
    invoice_mark_uncollectible,
    invoice_void,
    payment_attempt_reconcile,
    stripe_event_process,
)
from core.actors import Actor
from core.admin import AuditedModelAdmin
from core.errors import ApplicationError


class ReadOnlyAdmin(admin.ModelAdmin):
    """Shown, never added, changed or deleted through the admin."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class InvoiceLineInline(ReadOnlyInline):
    model = InvoiceLine
    fields = (
        "position",
        "kind",
        "description",
        "period_start",
        "period_end",
        "quantity",
        "unit_amount",
        "amount",
        "coupon",
        "discount_amount",
        "tax_percent",
        "tax_inclusive",
        "tax_amount",
        "total",
        "subscription_id",
    )
    readonly_fields = fields


def _invoice_action(
    service: Callable[..., Invoice], verb: str
) -> Callable[[Any, HttpRequest, QuerySet[Invoice]], None]:
    def action(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
        done, failed = 0, []
        # One service call (one transaction) per invoice, in id order: a refusal of one does
        # not undo the others.
        for invoice in queryset.order_by("pk"):
            try:
                service(invoice=invoice, actor=Actor.user(request.user))
                done += 1
            except ApplicationError as error:
                failed.append(f"{invoice}: {error.message}")
        if done:
            modeladmin.message_user(request, f"{done} invoice(s) {verb}.", messages.SUCCESS)
        for failure in failed:
            modeladmin.message_user(request, failure, messages.ERROR)

    return action


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "customer",
        "status",
        "billing_reason",
        "currency",
        "total",
        "amount_due",
        "issued_on",
        "due_on",
    )
    list_filter = ("status", "billing_reason", "currency")
    search_fields = ("number", "customer__email", "customer__name", "customer__external_id")
    list_select_related = ("customer",)
    date_hierarchy = "created_at"
    inlines = [InvoiceLineInline]
    actions = ["finalize", "void", "mark_uncollectible"]
    fields = (
        "customer",
        "number",
        "status",
        "billing_reason",
        "currency",
        "subtotal",
        "discount_total",
        "tax_total",
        "total",
        "credit_applied",
        "credited_total",
        "amount_paid",
        "amount_due",
        "issued_on",
        "due_on",
        "memo",
        "created_at",
        "finalized_at",
        "paid_at",
        "voided_at",
        "marked_uncollectible_at",
        "pdf_link",
    )
    readonly_fields = fields

    @admin.display(description="PDF")
    def pdf_link(self, obj: Invoice) -> SafeString | str:
        if obj.pk is None:
            return ""
        return format_html(
            '<a href="{}">Download {}</a>',
            reverse("admin:billing_invoice_pdf", args=[obj.pk]),
            invoice_pdf_filename(obj),
        )

    def get_urls(self) -> list[URLPattern]:
        pdf = path(
            "<int:invoice_id>/pdf/",
            self.admin_site.admin_view(self.pdf_view),
            name="billing_invoice_pdf",
        )
        return [pdf, *super().get_urls()]

    def pdf_view(self, request: HttpRequest, invoice_id: int) -> HttpResponse:
        if not self.has_view_permission(request):
            return HttpResponse(status=403)
        invoice = get_object_or_404(Invoice.objects.select_related("customer"), pk=invoice_id)
        response = HttpResponse(invoice_pdf(invoice), content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{invoice_pdf_filename(invoice)}"'
        return response

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # invoices come from subscriptions, the API or the back-office

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the page is read-only; the actions below change invoices

    def has_act_permission(self, request: HttpRequest) -> bool:
        """Finalizing, voiding and writing off need the permission to change invoices."""
        return request.user.has_perm("billing.change_invoice")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.status != Invoice.Status.DRAFT:
            return False
        return super().has_delete_permission(request, obj)

    def delete_model(self, request: HttpRequest, obj: Invoice) -> None:
        invoice_delete_draft(invoice=obj, actor=Actor.user(request.user))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
        refused = []
        for invoice in queryset.order_by("pk"):
            try:
                invoice_delete_draft(invoice=invoice, actor=Actor.user(request.user))
            except ApplicationError as error:
                refused.append(f"{invoice}: {error.message}")
        for message in refused:
            self.message_user(request, message, messages.ERROR)

    finalize = admin.action(description="Finalize the selected drafts", permissions=["act"])(
        _invoice_action(invoice_finalize, "finalized")
    )
    void = admin.action(description="Void the selected open invoices", permissions=["act"])(
        _invoice_action(invoice_void, "voided")
    )
    mark_uncollectible = admin.action(
        description="Mark the selected open invoices uncollectible", permissions=["act"]
    )(_invoice_action(invoice_mark_uncollectible, "marked uncollectible"))


class CreditNoteLineInline(ReadOnlyInline):
    model = CreditNoteLine
    fields = ("invoice_line", "description", "amount", "tax_amount", "total")
    readonly_fields = fields


@admin.register(CreditNote)
class CreditNoteAdmin(ReadOnlyAdmin):
    list_display = (
        "number",
        "invoice",
        "customer",
        "status",
        "outcome",
        "reason",
        "currency",
        "total",
        "issued_on",
    )
    list_filter = ("status", "outcome", "reason", "currency")
    search_fields = ("number", "invoice__number", "customer__email", "customer__name")
    list_select_related = ("invoice", "customer")
    inlines = [CreditNoteLineInline]


@admin.register(CustomerBalance)
class CustomerBalanceAdmin(ReadOnlyAdmin):
    list_display = ("customer", "currency", "amount", "updated_at")
    list_filter = ("currency",)
    search_fields = ("customer__email", "customer__name", "customer__external_id")
    list_select_related = ("customer",)


@admin.register(CustomerBalanceTransaction)
class CustomerBalanceTransactionAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "customer",
        "kind",
        "amount",
        "balance_after",
        "currency",
        "invoice",
        "credit_note",
        "memo",
    )
    list_filter = ("kind", "currency")
    search_fields = ("customer__email", "customer__name", "memo")
    list_select_related = ("customer", "invoice", "credit_note")


@admin.register(DocumentSequence)
class DocumentSequenceAdmin(AuditedModelAdmin):
    """A sequence may be set up ahead (a year's prefix); its counter only moves by numbering."""

    list_display = ("kind", "name", "prefix", "next_number")
    list_filter = ("kind",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if obj is None:
            return ("next_number",)
        if obj.next_number > 1:
            return ("kind", "name", "prefix", "next_number")  # numbers were handed out
        return ("kind", "name", "next_number")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.next_number > 1:
            return False
        return super().has_delete_permission(request, obj)


# --- payments -----------------------------------------------------------------------------------


@admin.register(PaymentMethod)
class PaymentMethodAdmin(ReadOnlyAdmin):
    list_display = ("__str__", "customer", "gateway", "is_default", "status", "created_at")
    list_filter = ("gateway", "status", "brand")
    search_fields = ("customer__email", "customer__name", "last4", "reference")
    list_select_related = ("customer",)


@admin.register(PaymentAttempt)
class PaymentAttemptAdmin(ReadOnlyAdmin):
    list_display = (
        "idempotency_key",
        "customer",
        "amount",
        "currency",
        "status",
        "decline_code",
        "decline_kind",
        "trigger",
        "created_at",
    )
    list_filter = ("status", "decline_kind", "gateway", "trigger")
    search_fields = ("idempotency_key", "gateway_reference", "invoice__number", "customer__email")
    list_select_related = ("customer",)
    actions = ["reconcile"]

    def has_act_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.change_invoice")

    @admin.action(
        description="Settle the selected unknown outcomes with the gateway", permissions=["act"]
    )
    def reconcile(self, request: HttpRequest, queryset: QuerySet[PaymentAttempt]) -> None:
        for attempt in queryset.filter(status=PaymentAttempt.Status.UNKNOWN).order_by("pk"):
            try:
                settled = payment_attempt_reconcile(attempt=attempt, actor=Actor.user(request.user))
            except ApplicationError as error:
                self.message_user(request, f"{attempt}: {error.message}", messages.ERROR)
            else:
                self.message_user(request, f"{attempt}: {settled.status}", messages.SUCCESS)


class RefundInline(ReadOnlyInline):
    model = Refund
    fields = ("amount", "reason", "status", "origin", "gateway_reference", "created_at")


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    list_display = (
        "__str__",
        "customer",
        "invoice",
        "method",
        "status",
        "amount_refunded",
        "received_on",
    )
    list_filter = ("method", "status", "gateway", "currency")
    search_fields = ("gateway_reference", "reference", "invoice__number", "customer__email")
    list_select_related = ("customer", "invoice")
    inlines = [RefundInline]


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdmin):
    list_display = ("__str__", "customer", "payment", "reason", "status", "origin", "created_at")
    list_filter = ("status", "reason", "origin", "currency")
    search_fields = ("gateway_reference", "idempotency_key", "customer__email")
    list_select_related = ("customer", "payment")


@admin.register(Dispute)
class DisputeAdmin(ReadOnlyAdmin):
    list_display = ("__str__", "customer", "payment", "amount", "currency", "status", "opened_at")
    list_filter = ("status", "currency")
    search_fields = ("gateway_reference", "customer__email")


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdmin):
    list_display = ("event_id", "type", "status", "received_at", "processed_at")
    list_filter = ("status", "type")
    search_fields = ("event_id",)
    actions = ["process_again"]

    def has_act_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.change_invoice")

    @admin.action(description="Process the selected failed events again", permissions=["act"])
    def process_again(self, request: HttpRequest, queryset: QuerySet[StripeEvent]) -> None:
        for event in queryset.filter(status=StripeEvent.Status.FAILED).order_by("pk"):
            done = stripe_event_process(event=event, actor=Actor.user(request.user))
            level = messages.ERROR if done.status == StripeEvent.Status.FAILED else messages.SUCCESS
            self.message_user(request, f"{done.event_id}: {done.status} {done.error}", level)
