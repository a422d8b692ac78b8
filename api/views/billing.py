"""Invoices, credit notes and customer credit balances.

Partner API keys see and act on their own customers' documents only: every lookup goes through
the billing selectors with the key's partner, so another partner's invoice is a 404, never a
403. Manual balance adjustments need the `admin` scope (which partner keys never have).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from api.base import PlatformViewSet, partner_scope, query_filters
from api.pagination import IdCursorPagination
from api.serializers.billing import (
    CreditNoteCreateSerializer,
    CreditNoteListQuerySerializer,
    CreditNoteSerializer,
    CustomerBalanceAdjustSerializer,
    CustomerBalanceSerializer,
    InvoiceCreateSerializer,
    InvoiceListQuerySerializer,
    InvoiceSerializer,
)
from api.serializers.payments import InvoicePaySerializer, PaymentAttemptSerializer
from billing.models import Invoice
from billing.pdf import invoice_pdf, invoice_pdf_filename
from billing.selectors import (
    balance_transactions,
    credit_note_get,
    credit_note_list,
    customer_balance,
    customer_balance_currency,
    invoice_get,
    invoice_list,
    payment_method_get,
)
from billing.services import (
    OneOffItem,
    credit_note_create,
    customer_balance_adjust,
    invoice_create_one_off,
    invoice_delete_draft,
    invoice_finalize,
    invoice_mark_uncollectible,
    invoice_pay_now,
    invoice_void,
)
from core.errors import NotFoundError, ValidationError
from core.money import normalize_currency
from customers.models import Customer
from customers.selectors import customer_get

INVOICE_ID = OpenApiParameter("id", int, OpenApiParameter.PATH, description="Invoice id.")
CREDIT_NOTE_ID = OpenApiParameter("id", int, OpenApiParameter.PATH, description="Credit note id.")
CUSTOMER_ID = OpenApiParameter(
    "customer_id", int, OpenApiParameter.PATH, description="Customer id."
)
BALANCE_CURRENCY = OpenApiParameter(
    "currency",
    str,
    OpenApiParameter.QUERY,
    required=False,
    description="ISO 4217; defaults to the customer's billing currency.",
)
RECENT_TRANSACTIONS = 20
T = TypeVar("T")


def _named(lookup: Callable[[], T], param: str) -> T:
    """A lookup by an id given in the body: a 404 names the body field, not the path's `id`."""
    try:
        return lookup()
    except NotFoundError as missing:
        raise NotFoundError(missing.message, code=missing.code, param=param) from None


class _AnyAcceptNegotiation(BaseContentNegotiation):
    """The PDF download answers whatever the client accepts (a browser, `Accept:
    application/pdf`): the document is a plain Django response, errors stay JSON."""

    def select_parser(self, request: Request, parsers: Any) -> Any:
        return parsers[0] if parsers else None

    def select_renderer(self, request: Request, renderers: Any, format_suffix: Any = None) -> Any:
        return (renderers[0], renderers[0].media_type)


def _invoice_response(invoice: Invoice, *, created: bool = False) -> Response:
    fresh = invoice_get(pk=invoice.pk)  # with its lines, as they were saved
    return Response(
        InvoiceSerializer(fresh).data,
        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
    )


@extend_schema_view(
    list=extend_schema(
        operation_id="invoices_list",
        summary="List invoices",
        description="Newest first, each with its lines.",
        parameters=[InvoiceListQuerySerializer],
        responses=InvoiceSerializer(many=True),
    ),
    retrieve=extend_schema(
        operation_id="invoices_retrieve",
        summary="Retrieve an invoice with its lines",
        parameters=[INVOICE_ID],
        responses=InvoiceSerializer,
    ),
    create=extend_schema(
        operation_id="invoices_create",
        summary="Create a one-off invoice",
        description=(
            "Each item is billed as quantity x unit amount (kind `one_off`), taxed at the "
            "customer's rate unless `tax` is false. Finalized at once unless `finalize` is "
            "false: a gapless number, the customer's credit balance applied."
        ),
        request=InvoiceCreateSerializer,
        responses={201: InvoiceSerializer},
    ),
    destroy=extend_schema(
        operation_id="invoices_delete",
        summary="Delete a draft invoice",
        description="Only drafts; a finalized invoice is voided, never deleted.",
        parameters=[INVOICE_ID],
        responses={204: None},
    ),
)
@extend_schema(tags=["invoices"])
class InvoiceViewSet(PlatformViewSet):
    lookup_value_regex = "[0-9]+"
    filter_backends: list[Any] = []
    pagination_class = IdCursorPagination

    def get_content_negotiator(self) -> BaseContentNegotiation:
        if getattr(self, "action", None) == "pdf":
            return _AnyAcceptNegotiation()
        return super().get_content_negotiator()

    def list(self, request: Request) -> Response:
        filters = query_filters(request, InvoiceListQuerySerializer)
        invoices = invoice_list(
            partner=partner_scope(request),
            customer_id=filters.get("customer"),
            subscription_id=filters.get("subscription"),
            status=filters.get("status"),
            number=filters.get("number"),
        )
        return self.paginated_response(invoices, InvoiceSerializer)

    def retrieve(self, request: Request, pk: str) -> Response:
        invoice = invoice_get(pk=pk, partner=partner_scope(request))
        return Response(InvoiceSerializer(invoice).data)

    def create(self, request: Request) -> Response:
        payload = InvoiceCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        customer = _named(
            lambda: customer_get(pk=data["customer"], partner=partner_scope(request)), "customer"
        )
        currency = data.get("currency") or customer.currency
        if not currency:
            raise ValidationError(
                "This customer has no billing currency yet: give `currency`.",
                code="currency_required",
                param="currency",
            )
        invoice = invoice_create_one_off(
            customer=customer,
            currency=currency,
            items=[OneOffItem(**item) for item in data["items"]],
            actor=self.actor,
            finalize=data["finalize"],
            memo=data["memo"],
        )
        return _invoice_response(invoice, created=True)

    def destroy(self, request: Request, pk: str) -> Response:
        invoice = invoice_get(pk=pk, partner=partner_scope(request))
        invoice_delete_draft(invoice=invoice, actor=self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        operation_id="invoices_finalize",
        summary="Finalize a draft invoice",
        description=(
            "Assigns the next gapless number, the issue and due dates, and applies the "
            "customer's credit balance; an invoice with nothing left to pay is `paid` at once."
        ),
        parameters=[INVOICE_ID],
        request=None,
        responses=InvoiceSerializer,
    )
    @action(detail=True, methods=["post"])
    def finalize(self, request: Request, pk: str) -> Response:
        invoice = invoice_get(pk=pk, partner=partner_scope(request))
        return _invoice_response(invoice_finalize(invoice=invoice, actor=self.actor))

    @extend_schema(
        operation_id="invoices_void",
        summary="Void an open invoice",
        description="Nothing is due any more; the credit balance it used goes back. It keeps "
        "its number.",
        parameters=[INVOICE_ID],
        request=None,
        responses=InvoiceSerializer,
    )
    @action(detail=True, methods=["post"])
    def void(self, request: Request, pk: str) -> Response:
        invoice = invoice_get(pk=pk, partner=partner_scope(request))
        return _invoice_response(invoice_void(invoice=invoice, actor=self.actor))

    @extend_schema(
        operation_id="invoices_mark_uncollectible",
        summary="Mark an open invoice uncollectible",
        parameters=[INVOICE_ID],
        request=None,
        responses=InvoiceSerializer,
    )
    @action(detail=True, methods=["post"])
    def mark_uncollectible(self, request: Request, pk: str) -> Response:
        invoice = invoice_get(pk=pk, partner=partner_scope(request))
        return _invoice_response(invoice_mark_uncollectible(invoice=invoice, actor=self.actor))

    @extend_schema(
        operation_id="invoices_pay",
        summary="Pay an open invoice now",
        description=(
            "Charges what is due to the given saved payment method, or the customer's "
            "default one. The attempt is returned whatever its outcome: `succeeded` (the "
            "invoice is paid), `declined` (with the decline code and kind: a `hard` decline "
            "is not retried with the same method, `payment_retry_blocked`) or `unknown` (it "
            "is reconciled with the gateway later, never charged twice)."
        ),
        parameters=[INVOICE_ID],
        request=InvoicePaySerializer,
        responses=PaymentAttemptSerializer,
    )
    @action(detail=True, methods=["post"])
    def pay(self, request: Request, pk: str) -> Response:
        partner = partner_scope(request)
        invoice = invoice_get(pk=pk, partner=partner)
        payload = InvoicePaySerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        method_id = payload.validated_data.get("payment_method")
        method = (
            _named(lambda: payment_method_get(pk=method_id, partner=partner), "payment_method")
            if method_id is not None
            else None
        )
        attempt = invoice_pay_now(invoice=invoice, payment_method=method, actor=self.actor)
        return Response(PaymentAttemptSerializer(attempt).data)

    @extend_schema(
        operation_id="invoices_pdf",
        summary="Download an invoice as PDF",
        description="Drafts are marked DRAFT. Errors are JSON like everywhere else.",
        parameters=[INVOICE_ID],
        responses={(200, "application/pdf"): OpenApiTypes.BINARY},
    )
    @action(detail=True, methods=["get"])
    def pdf(self, request: Request, pk: str) -> HttpResponse:
        invoice = invoice_get(pk=pk, partner=partner_scope(request))
        response = HttpResponse(invoice_pdf(invoice), content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{invoice_pdf_filename(invoice)}"'
        return response


@extend_schema_view(
    list=extend_schema(
        operation_id="credit_notes_list",
        summary="List credit notes",
        parameters=[CreditNoteListQuerySerializer],
        responses=CreditNoteSerializer(many=True),
    ),
    retrieve=extend_schema(
        operation_id="credit_notes_retrieve",
        summary="Retrieve a credit note",
        parameters=[CREDIT_NOTE_ID],
        responses=CreditNoteSerializer,
    ),
    create=extend_schema(
        operation_id="credit_notes_create",
        summary="Credit an invoice",
        description=(
            "Credit the whole invoice (neither `lines` nor `amount`), chosen lines by pre-tax "
            "amounts, or an `amount` (tax included) spread over the lines in proportion to "
            "their totals. Each credit-note line is taxed at its invoice line's rate. The value "
            "goes to the customer's credit balance, off the invoice's amount due, or back to "
            "the customer (`refund`: the invoice's payments are refunded, newest first; "
            "`refund_exceeds_payments` when less than that is left of them); never more than "
            "is left to credit."
        ),
        request=CreditNoteCreateSerializer,
        responses={201: CreditNoteSerializer},
    ),
)
@extend_schema(tags=["credit notes"])
class CreditNoteViewSet(PlatformViewSet):
    lookup_value_regex = "[0-9]+"
    filter_backends: list[Any] = []
    pagination_class = IdCursorPagination

    def list(self, request: Request) -> Response:
        query = query_filters(request, CreditNoteListQuerySerializer)
        notes = credit_note_list(
            partner=partner_scope(request),
            invoice_id=query.get("invoice"),
            customer_id=query.get("customer"),
        )
        return self.paginated_response(notes, CreditNoteSerializer)

    def retrieve(self, request: Request, pk: str) -> Response:
        note = credit_note_get(pk=pk, partner=partner_scope(request))
        return Response(CreditNoteSerializer(note).data)

    def create(self, request: Request) -> Response:
        payload = CreditNoteCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        invoice = _named(
            lambda: invoice_get(pk=data["invoice"], partner=partner_scope(request)), "invoice"
        )
        lines = None
        if "lines" in data:
            by_id = {line.pk: line for line in invoice.lines.all()}
            lines = []
            for index, item in enumerate(data["lines"]):
                line = by_id.get(item["invoice_line"])
                if line is None:
                    raise ValidationError(
                        f"Line {item['invoice_line']} is not a line of this invoice.",
                        code="line_not_on_invoice",
                        param=f"lines[{index}].invoice_line",
                    )
                lines.append((line, item["amount"]))
        note = credit_note_create(
            invoice=invoice,
            actor=self.actor,
            outcome=data["outcome"],
            reason=data["reason"],
            memo=data["memo"],
            lines=lines,
            amount=data.get("amount"),
        )
        return Response(
            CreditNoteSerializer(credit_note_get(pk=note.pk)).data, status=status.HTTP_201_CREATED
        )


@extend_schema(tags=["customers"])
class CustomerBalanceViewSet(PlatformViewSet):
    lookup_url_kwarg = "customer_id"
    lookup_value_regex = "[0-9]+"
    filter_backends: list[Any] = []
    pagination_class = None
    required_scopes = {"balance_adjust": "admin"}

    @extend_schema(
        operation_id="customers_balance_retrieve",
        summary="A customer's credit balance",
        description=f"The balance and its {RECENT_TRANSACTIONS} most recent movements.",
        parameters=[CUSTOMER_ID, BALANCE_CURRENCY],
        responses=CustomerBalanceSerializer,
    )
    @action(detail=True, methods=["get"], url_path="balance")
    def balance(self, request: Request, customer_id: str) -> Response:
        customer = customer_get(pk=customer_id, partner=partner_scope(request))
        currency = request.query_params.get("currency") or customer_balance_currency(
            customer=customer
        )
        return Response(CustomerBalanceSerializer(_balance_body(customer, currency)).data)

    @extend_schema(
        operation_id="customers_balance_adjust",
        summary="Adjust a customer's credit balance",
        description="Admin scope. Positive adds credit, negative takes it away; the balance "
        "never goes below zero (`insufficient_balance`).",
        parameters=[CUSTOMER_ID],
        request=CustomerBalanceAdjustSerializer,
        responses={201: CustomerBalanceSerializer},
    )
    @balance.mapping.post
    def balance_adjust(self, request: Request, customer_id: str) -> Response:
        customer = customer_get(pk=customer_id, partner=partner_scope(request))
        payload = CustomerBalanceAdjustSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        currency = data.get("currency") or customer.currency
        if not currency:
            raise ValidationError(
                "This customer has no billing currency yet: give `currency`.",
                code="currency_required",
                param="currency",
            )
        entry = customer_balance_adjust(
            customer=customer,
            currency=currency,
            amount=data["amount"],
            kind="adjustment",
            actor=self.actor,
            memo=data["memo"],
        )
        return Response(
            CustomerBalanceSerializer(_balance_body(customer, entry.currency)).data,
            status=status.HTTP_201_CREATED,
        )


def _balance_body(customer: Customer, currency: str) -> dict[str, Any]:
    if not currency:
        return {"customer": customer.pk, "currency": None, "balance": None, "transactions": []}
    currency = normalize_currency(currency)
    return {
        "customer": customer.pk,
        "currency": currency,
        "balance": customer_balance(customer=customer, currency=currency),
        "transactions": list(
            balance_transactions(customer=customer, currency=currency)[:RECENT_TRANSACTIONS]
        ),
    }


def register(router: DefaultRouter) -> None:
    """Register this module's viewsets on the v1 router."""
    router.register("invoices", InvoiceViewSet, basename="invoices")
    router.register("credit_notes", CreditNoteViewSet, basename="credit-notes")
    router.register("customers", CustomerBalanceViewSet, basename="customer-balance")
