"""Payment methods, payment attempts, payments, refunds and Stripe's webhooks.

Partner API keys see and act on their own customers' objects only (another partner's is a
404). The Stripe webhook is called by Stripe, not by a key
holder: it has no API-key authentication, scopes or rate limit, and is authenticated by its
Stripe-Signature header instead.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from api.base import PlatformViewSet, id_parameter, partner_scope, query_filters
from api.pagination import IdCursorPagination
from api.serializers.payments import (
    OfflinePaymentSerializer,
    PaymentAttemptListQuerySerializer,
    PaymentAttemptSerializer,
    PaymentListQuerySerializer,
    PaymentMethodCreateSerializer,
    PaymentMethodListQuerySerializer,
    PaymentMethodSerializer,
    PaymentSerializer,
    RefundCreateSerializer,
    RefundListQuerySerializer,
    RefundSerializer,
    StripeWebhookResultSerializer,
)
from api.views.billing import _named
from billing.selectors import (
    invoice_get,
    payment_attempt_get,
    payment_attempt_list,
    payment_get,
    payment_list,
    payment_method_get,
    payment_method_list,
    refund_get,
    refund_list,
)
from billing.services import (
    payment_attempt_reconcile,
    payment_method_attach,
    payment_method_detach,
    payment_method_set_default,
    payment_record_offline,
    refund_create,
    stripe_event_receive,
)
from customers.selectors import customer_get

# --- payment methods ----------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        operation_id="payment_methods_list",
        summary="List saved payment methods",
        description="Active ones unless `include_detached`; newest first.",
        parameters=[PaymentMethodListQuerySerializer],
        responses=PaymentMethodSerializer(many=True),
    ),
    retrieve=extend_schema(
        operation_id="payment_methods_retrieve",
        summary="Retrieve a payment method",
        parameters=[id_parameter("Payment method")],
        responses=PaymentMethodSerializer,
    ),
    create=extend_schema(
        operation_id="payment_methods_create",
        summary="Save a card for a customer",
        description=(
            "With the simulated gateway, a test card number and expiry (tokenized at once, "
            "never stored: only brand, last four digits and expiry are kept). With Stripe, the "
            "pm_... id Stripe.js created. Becomes the default unless `make_default` is false. "
            "A customer whose last charge was declined hard has their open invoices retried "
            "at once."
        ),
        request=PaymentMethodCreateSerializer,
        responses={201: PaymentMethodSerializer},
    ),
)
@extend_schema(tags=["payment methods"])
class PaymentMethodViewSet(PlatformViewSet):
    lookup_value_regex = "[0-9]+"
    filter_backends: list[Any] = []
    pagination_class = IdCursorPagination

    def list(self, request: Request) -> Response:
        query = query_filters(request, PaymentMethodListQuerySerializer)
        methods = payment_method_list(
            partner=partner_scope(request),
            customer_id=query.get("customer"),
            include_detached=query["include_detached"],
        )
        return self.paginated_response(methods, PaymentMethodSerializer)

    def retrieve(self, request: Request, pk: str) -> Response:
        method = payment_method_get(pk=pk, partner=partner_scope(request))
        return Response(PaymentMethodSerializer(method).data)

    def create(self, request: Request) -> Response:
        payload = PaymentMethodCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        customer = _named(
            lambda: customer_get(pk=data["customer"], partner=partner_scope(request)), "customer"
        )
        method = payment_method_attach(
            customer=customer,
            actor=self.actor,
            card_number=data.get("card_number", ""),
            exp_month=data.get("exp_month"),
            exp_year=data.get("exp_year"),
            payment_method_reference=data.get("payment_method", ""),
            make_default=data["make_default"],
        )
        return Response(PaymentMethodSerializer(method).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="payment_methods_set_default",
        summary="Make a payment method the customer's default",
        parameters=[id_parameter("Payment method")],
        request=None,
        responses=PaymentMethodSerializer,
    )
    @action(detail=True, methods=["post"])
    def set_default(self, request: Request, pk: str) -> Response:
        method = payment_method_get(pk=pk, partner=partner_scope(request))
        method = payment_method_set_default(payment_method=method, actor=self.actor)
        return Response(PaymentMethodSerializer(method).data)

    @extend_schema(
        operation_id="payment_methods_detach",
        summary="Detach a payment method",
        description="It is never charged again; a detached default leaves none.",
        parameters=[id_parameter("Payment method")],
        request=None,
        responses=PaymentMethodSerializer,
    )
    @action(detail=True, methods=["post"])
    def detach(self, request: Request, pk: str) -> Response:
        method = payment_method_get(pk=pk, partner=partner_scope(request))
        method = payment_method_detach(payment_method=method, actor=self.actor)
        return Response(PaymentMethodSerializer(method).data)


# --- payment attempts ---------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        operation_id="payment_attempts_list",
        summary="List payment attempts",
        parameters=[PaymentAttemptListQuerySerializer],
        responses=PaymentAttemptSerializer(many=True),
    ),
    retrieve=extend_schema(
        operation_id="payment_attempts_retrieve",
        summary="Retrieve a payment attempt",
        parameters=[id_parameter("Payment attempt")],
        responses=PaymentAttemptSerializer,
    ),
)
@extend_schema(tags=["payments"])
class PaymentAttemptViewSet(PlatformViewSet):
    lookup_value_regex = "[0-9]+"
    filter_backends: list[Any] = []
    pagination_class = IdCursorPagination

    def list(self, request: Request) -> Response:
        filters = query_filters(request, PaymentAttemptListQuerySerializer)
        attempts = payment_attempt_list(
            partner=partner_scope(request),
            invoice_id=filters.get("invoice"),
            customer_id=filters.get("customer"),
            status=filters.get("status"),
        )
        return self.paginated_response(attempts, PaymentAttemptSerializer)

    def retrieve(self, request: Request, pk: str) -> Response:
        attempt = payment_attempt_get(pk=pk, partner=partner_scope(request))
        return Response(PaymentAttemptSerializer(attempt).data)

    @extend_schema(
        operation_id="payment_attempts_reconcile",
        summary="Settle an attempt whose outcome is unknown",
        description=(
            "Asks the gateway what became of the attempt's idempotency key; if the gateway "
            "never saw it, sends it again with the same key. Never charges twice."
        ),
        parameters=[id_parameter("Payment attempt")],
        request=None,
        responses=PaymentAttemptSerializer,
    )
    @action(detail=True, methods=["post"])
    def reconcile(self, request: Request, pk: str) -> Response:
        attempt = payment_attempt_get(pk=pk, partner=partner_scope(request))
        attempt = payment_attempt_reconcile(attempt=attempt, actor=self.actor)
        return Response(PaymentAttemptSerializer(attempt).data)


# --- payments -----------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        operation_id="payments_list",
        summary="List payments",
        parameters=[PaymentListQuerySerializer],
        responses=PaymentSerializer(many=True),
    ),
    retrieve=extend_schema(
        operation_id="payments_retrieve",
        summary="Retrieve a payment",
        parameters=[id_parameter("Payment")],
        responses=PaymentSerializer,
    ),
)
@extend_schema(tags=["payments"])
class PaymentViewSet(PlatformViewSet):
    lookup_value_regex = "[0-9]+"
    filter_backends: list[Any] = []
    pagination_class = IdCursorPagination

    def list(self, request: Request) -> Response:
        filters = query_filters(request, PaymentListQuerySerializer)
        payments = payment_list(
            partner=partner_scope(request),
            customer_id=filters.get("customer"),
            invoice_id=filters.get("invoice"),
            status=filters.get("status"),
        )
        return self.paginated_response(payments, PaymentSerializer)

    def retrieve(self, request: Request, pk: str) -> Response:
        payment = payment_get(pk=pk, partner=partner_scope(request))
        return Response(PaymentSerializer(payment).data)

    @extend_schema(
        operation_id="payments_record_offline",
        summary="Record a payment received offline",
        description="A bank transfer, cheque or other payment received by staff: part or all "
        "of what the invoice asks, never more (`payment_exceeds_amount_due`).",
        request=OfflinePaymentSerializer,
        responses={201: PaymentSerializer},
    )
    @action(detail=False, methods=["post"])
    def offline(self, request: Request) -> Response:
        payload = OfflinePaymentSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        invoice = _named(
            lambda: invoice_get(pk=data["invoice"], partner=partner_scope(request)), "invoice"
        )
        payment = payment_record_offline(
            invoice=invoice,
            amount=data["amount"],
            method=data["method"],
            reference=data["reference"],
            received_on=data["received_on"],
            actor=self.actor,
        )
        return Response(PaymentSerializer(payment).data, status=status.HTTP_201_CREATED)


# --- refunds ------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        operation_id="refunds_list",
        summary="List refunds",
        parameters=[RefundListQuerySerializer],
        responses=RefundSerializer(many=True),
    ),
    retrieve=extend_schema(
        operation_id="refunds_retrieve",
        summary="Retrieve a refund",
        parameters=[id_parameter("Refund")],
        responses=RefundSerializer,
    ),
    create=extend_schema(
        operation_id="refunds_create",
        summary="Refund a payment, fully or in part",
        description=(
            "Never more than the payment has left (`refund_exceeds_payment`) or its invoice "
            "has left to give back (`refund_exceeds_invoice`). The invoice's lines are given "
            "back in proportion, which the ledger books against revenue."
        ),
        request=RefundCreateSerializer,
        responses={201: RefundSerializer},
    ),
)
@extend_schema(tags=["refunds"])
class RefundViewSet(PlatformViewSet):
    lookup_value_regex = "[0-9]+"
    filter_backends: list[Any] = []
    pagination_class = IdCursorPagination

    def list(self, request: Request) -> Response:
        query = query_filters(request, RefundListQuerySerializer)
        refunds = refund_list(
            partner=partner_scope(request),
            payment_id=query.get("payment"),
            customer_id=query.get("customer"),
        )
        return self.paginated_response(refunds, RefundSerializer)

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(RefundSerializer(refund_get(pk=pk, partner=partner_scope(request))).data)

    def create(self, request: Request) -> Response:
        payload = RefundCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        payment = _named(
            lambda: payment_get(pk=data["payment"], partner=partner_scope(request)), "payment"
        )
        refund = refund_create(
            payment=payment,
            amount=data.get("amount"),
            reason=data["reason"],
            memo=data["memo"],
            actor=self.actor,
        )
        return Response(RefundSerializer(refund).data, status=status.HTTP_201_CREATED)


# --- Stripe webhooks ----------------------------------------------------------------------------


@extend_schema(tags=["webhooks"])
class StripeWebhookViewSet(PlatformViewSet):
    # Called by Stripe: no API key, scope or rate limit; the Stripe-Signature header (checked
    # against STRIPE_WEBHOOK_SECRET by the service) authenticates the request instead.
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes: list[Any] = []
    filter_backends: list[Any] = []
    pagination_class = None

    @extend_schema(
        operation_id="webhooks_stripe",
        summary="Receive a Stripe webhook event",
        description=(
            "For Stripe only: authenticated by the Stripe-Signature header, not an API key. "
            "The raw event is stored first (once per event id), then processed; a repeated "
            "delivery does nothing twice. 400 `invalid_signature` when the signature does not "
            "match."
        ),
        auth=[],
        request={"application/json": OpenApiTypes.OBJECT},
        responses=StripeWebhookResultSerializer,
    )
    @action(detail=False, methods=["post"])
    def stripe(self, request: Request) -> Response:
        event = stripe_event_receive(
            payload=request.body, signature=request.headers.get("Stripe-Signature", "")
        )
        return Response(StripeWebhookResultSerializer(event).data)


def register(router: DefaultRouter) -> None:
    """Register this module's viewsets on the v1 router."""
    router.register("payment_methods", PaymentMethodViewSet, basename="payment-methods")
    router.register("payment_attempts", PaymentAttemptViewSet, basename="payment-attempts")
    router.register("payments", PaymentViewSet, basename="payments")
    router.register("refunds", RefundViewSet, basename="refunds")
    router.register("webhooks", StripeWebhookViewSet, basename="stripe-webhooks")
