"""Subscriptions and their lifecycle: create, change, cancel, pause, resume, reactivate, renew.

Each action parses its input, calls one lifecycle service and renders what it returns: the
subscription as it is now with the invoice issued (if any), or, with `preview: true`, the
invoice a change would issue, computed without writing anything. Partner API keys act only
on their own customers' subscriptions (another partner's is a 404).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import (
    OpenApiParameter,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_view,
)
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from api.base import PlatformViewSet, partner_scope, query_filters
from api.pagination import IdCursorPagination
from api.serializers.billing import InvoiceSerializer
from api.serializers.subscriptions import (
    CancelSerializer,
    ChangePlanSerializer,
    ChangePreviewSerializer,
    ChangeQuantitySerializer,
    PauseSerializer,
    ReactivateSerializer,
    SubscriptionCreateSerializer,
    SubscriptionEventSerializer,
    SubscriptionListQuerySerializer,
    SubscriptionResultSerializer,
    SubscriptionSerializer,
    UndoChangeSerializer,
    UpcomingInvoiceSerializer,
)
from billing.selectors import invoice_get
from billing.services import InvoicePreview
from customers.selectors import customer_get
from subscriptions.selectors import (
    plan_for_reference,
    subscription_get,
    subscription_list,
    subscription_timeline,
)
from subscriptions.services import (
    ChangePreview,
    LifecycleResult,
    subscription_cancel,
    subscription_change_plan,
    subscription_change_quantity,
    subscription_create,
    subscription_next_invoice_preview,
    subscription_pause,
    subscription_reactivate,
    subscription_renew,
    subscription_resume,
    subscription_undo_cancel,
    subscription_undo_scheduled_change,
)

SUBSCRIPTION_ID = OpenApiParameter("id", int, OpenApiParameter.PATH, description="Subscription id.")
CUSTOMER_ID_NESTED = OpenApiParameter(
    "customer_id", int, OpenApiParameter.PATH, description="Customer id."
)
CHANGE_RESPONSE = PolymorphicProxySerializer(
    component_name="SubscriptionChangeResponse",
    serializers=[SubscriptionResultSerializer, ChangePreviewSerializer],
    resource_type_field_name=None,
)


def _result(result: LifecycleResult, *, created: bool = False) -> Response:
    invoice = invoice_get(pk=result.invoice.pk) if result.invoice is not None else None
    body = {
        "subscription": SubscriptionSerializer(result.subscription).data,
        "invoice": InvoiceSerializer(invoice).data if invoice is not None else None,
    }
    return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


def _preview_body(preview: InvoicePreview | None) -> dict[str, Any] | None:
    if preview is None:
        return None
    invoice = preview.invoice
    return {
        "currency": invoice.currency,
        "billing_reason": invoice.billing_reason,
        "subtotal": invoice.subtotal,
        "discount_total": invoice.discount_total,
        "tax_total": invoice.tax_total,
        "total": invoice.total,
        "starting_balance": preview.starting_balance,
        "credit_applied": preview.credit_applied,
        "amount_due": preview.amount_due,
        "lines": preview.lines,
    }


def _change_response(outcome: LifecycleResult | ChangePreview) -> Response:
    if isinstance(outcome, LifecycleResult):
        return _result(outcome)
    body = {
        "preview": True,
        "policy": outcome.policy,
        "effective_on": outcome.effective_on,
        "invoice": _preview_body(outcome.invoice),
    }
    return Response(ChangePreviewSerializer(body).data)


def _simple(summary: str, description: str, request: Any = None) -> Any:
    return extend_schema(
        summary=summary,
        description=description,
        parameters=[SUBSCRIPTION_ID],
        request=request,
        responses=SubscriptionResultSerializer,
    )


class TimelinePagination(IdCursorPagination):
    ordering = "id"  # history reads in the order it happened


@extend_schema_view(
    list=extend_schema(
        operation_id="subscriptions_list",
        summary="List subscriptions",
        parameters=[SubscriptionListQuerySerializer],
        responses=SubscriptionSerializer(many=True),
    ),
    create=extend_schema(
        operation_id="subscriptions_create",
        summary="Create a subscription",
        description=(
            "Now or from `start_on`, with the plan's trial unless `trial` is false, with a "
            "coupon or promotion code, calendar billing on `billing_day`, or as an add-on of "
            "`parent` (billed on its anchor). Starting now without a trial issues the first "
            "invoice at once."
        ),
        request=SubscriptionCreateSerializer,
        responses={201: SubscriptionResultSerializer},
    ),
    retrieve=extend_schema(
        operation_id="subscriptions_retrieve",
        summary="Retrieve a subscription",
        parameters=[SUBSCRIPTION_ID],
        responses=SubscriptionSerializer,
    ),
)
@extend_schema(tags=["subscriptions"])
class SubscriptionViewSet(PlatformViewSet):
    lookup_value_regex = "[0-9]+"
    filter_backends: list[Any] = []
    pagination_class = IdCursorPagination

    def list(self, request: Request) -> Response:
        query = query_filters(request, SubscriptionListQuerySerializer)
        subscriptions = subscription_list(partner=partner_scope(request), **query).prefetch_related(
            "discounts__coupon", "discounts__promotion_code"
        )
        return self.paginated_response(subscriptions, SubscriptionSerializer)

    def create(self, request: Request) -> Response:
        scope = partner_scope(request)
        payload = SubscriptionCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = dict(payload.validated_data)
        data["customer"] = customer_get(pk=data["customer"], partner=scope)
        data["plan"] = plan_for_reference(reference=data["plan"])
        if "parent" in data:
            data["parent"] = subscription_get(pk=data["parent"], partner=scope)
        return _result(subscription_create(**data, actor=self.actor), created=True)

    def retrieve(self, request: Request, pk: str) -> Response:
        subscription = subscription_get(pk=pk, partner=partner_scope(request))
        return Response(SubscriptionSerializer(subscription).data)

    def _subscription(self, pk: str) -> Any:
        return subscription_get(pk=pk, partner=partner_scope(self.request))

    @extend_schema(
        summary="Change the plan",
        description=(
            "An upgrade (higher monthly-normalized price) applies now: a credit for the unused "
            "days of the old plan and a charge for the new one to the end of its period from "
            "the same anchor. Anything else waits for the period end. `policy` forces either. "
            "With `preview: true` nothing changes: the answer is the invoice it would issue."
        ),
        parameters=[SUBSCRIPTION_ID],
        request=ChangePlanSerializer,
        responses=CHANGE_RESPONSE,
    )
    @action(detail=True, methods=["post"])
    def change_plan(self, request: Request, pk: str) -> Response:
        subscription = self._subscription(pk)
        payload = ChangePlanSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = dict(payload.validated_data)
        data["plan"] = plan_for_reference(reference=data["plan"])
        return _change_response(
            subscription_change_plan(subscription=subscription, **data, actor=self.actor)
        )

    @extend_schema(
        summary="Change the quantity",
        description=(
            "More now (the unused days at the old quantity credited, the new quantity "
            "charged), fewer at the period end, unless `policy` says otherwise; `preview` "
            "as for a plan change."
        ),
        parameters=[SUBSCRIPTION_ID],
        request=ChangeQuantitySerializer,
        responses=CHANGE_RESPONSE,
    )
    @action(detail=True, methods=["post"])
    def change_quantity(self, request: Request, pk: str) -> Response:
        subscription = self._subscription(pk)
        payload = ChangeQuantitySerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        return _change_response(
            subscription_change_quantity(
                subscription=subscription, **payload.validated_data, actor=self.actor
            )
        )

    @_simple(
        "Cancel",
        "At the period end by default (access until then, no credit, undoable); `immediate` "
        "ends it today and credits the unused days to the customer's balance.",
        CancelSerializer,
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        subscription = self._subscription(pk)
        payload = CancelSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        return _result(
            subscription_cancel(
                subscription=subscription, **payload.validated_data, actor=self.actor
            )
        )

    @_simple("Undo a scheduled cancel", "Until the period end it was scheduled for.")
    @action(detail=True, methods=["post"])
    def undo_cancel(self, request: Request, pk: str) -> Response:
        subscription = self._subscription(pk)
        return _result(subscription_undo_cancel(subscription=subscription, actor=self.actor))

    @_simple(
        "Undo a scheduled change",
        "A pending plan change, quantity change or pause, before it takes effect.",
        UndoChangeSerializer,
    )
    @action(detail=True, methods=["post"])
    def undo_change(self, request: Request, pk: str) -> Response:
        subscription = self._subscription(pk)
        payload = UndoChangeSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        return _result(
            subscription_undo_scheduled_change(
                subscription=subscription, kind=payload.validated_data["kind"], actor=self.actor
            )
        )

    @_simple(
        "Pause",
        "`now` (the unused days are credited) or at the `period_end`, for `cycles` billing "
        "periods or until `resumes_on` (at most SUBSCRIPTION_MAX_PAUSE_CYCLES periods). No "
        "invoices while paused.",
        PauseSerializer,
    )
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str) -> Response:
        subscription = self._subscription(pk)
        payload = PauseSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        return _result(
            subscription_pause(
                subscription=subscription, **payload.validated_data, actor=self.actor
            )
        )

    @_simple(
        "Resume",
        "Today: the prorated days to the next anchor date are billed; the anchor is kept.",
    )
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str) -> Response:
        subscription = self._subscription(pk)
        return _result(subscription_resume(subscription=subscription, actor=self.actor))

    @extend_schema(
        summary="Reactivate an ended subscription",
        description="A new subscription from today, without trial, linked to the ended one.",
        parameters=[SUBSCRIPTION_ID],
        request=ReactivateSerializer,
        responses={201: SubscriptionResultSerializer},
    )
    @action(detail=True, methods=["post"])
    def reactivate(self, request: Request, pk: str) -> Response:
        subscription = self._subscription(pk)
        payload = ReactivateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        plan = payload.validated_data.get("plan")
        chosen = plan_for_reference(reference=plan) if plan is not None else None
        result = subscription_reactivate(subscription=subscription, plan=chosen, actor=self.actor)
        return _result(result, created=True)

    @_simple(
        "Renew a fixed term",
        "One more term for a term that does not renew by itself, or the next term now for "
        "one that does and has reached its end.",
    )
    @action(detail=True, methods=["post"])
    def renew(self, request: Request, pk: str) -> Response:
        subscription = self._subscription(pk)
        return _result(subscription_renew(subscription=subscription, actor=self.actor))

    @extend_schema(
        summary="The subscription's timeline",
        description="Every change, oldest first.",
        parameters=[SUBSCRIPTION_ID],
        responses=SubscriptionEventSerializer(many=True),
    )
    @action(detail=True, methods=["get"], pagination_class=TimelinePagination)
    def timeline(self, request: Request, pk: str) -> Response:
        subscription = self._subscription(pk)
        return self.paginated_response(
            subscription_timeline(subscription=subscription), SubscriptionEventSerializer
        )

    @extend_schema(
        summary="Preview the next invoice",
        description=(
            "A dry run of the next renewal invoice (with the add-ons on it): nothing is "
            "written. Null when nothing more will be billed."
        ),
        parameters=[SUBSCRIPTION_ID],
        responses=UpcomingInvoiceSerializer,
    )
    @action(detail=True, methods=["get"])
    def upcoming_invoice(self, request: Request, pk: str) -> Response:
        subscription = self._subscription(pk)
        upcoming = subscription_next_invoice_preview(subscription=subscription)
        body = {
            "billing_date": upcoming.billing_date if upcoming is not None else None,
            "invoice": _preview_body(upcoming.invoice) if upcoming is not None else None,
        }
        return Response(UpcomingInvoiceSerializer(body).data)


@extend_schema_view(
    list=extend_schema(
        operation_id="customers_subscriptions_list",
        summary="List a customer's subscriptions",
        parameters=[CUSTOMER_ID_NESTED],
        responses=SubscriptionSerializer(many=True),
    ),
)
@extend_schema(tags=["subscriptions"])
class CustomerSubscriptionViewSet(PlatformViewSet):
    filter_backends: list[Any] = []
    pagination_class = IdCursorPagination

    def list(self, request: Request, customer_id: str) -> Response:
        scope = partner_scope(request)
        customer = customer_get(pk=customer_id, partner=scope)
        return self.paginated_response(
            subscription_list(partner=scope, customer=customer), SubscriptionSerializer
        )


def register(router: DefaultRouter) -> None:
    """Register this module's viewsets on the v1 router."""
    router.register("subscriptions", SubscriptionViewSet, basename="subscriptions")
    router.register(
        r"customers/(?P<customer_id>[0-9]+)/subscriptions",
        CustomerSubscriptionViewSet,
        basename="customer-subscriptions",
    )
