"""Saved payment methods: a gateway's token and what may be shown of a card, per customer.

A card number reaches `payment_method_attach` only to be handed to the gateway, which turns it
into a token at once (the simulated gateway; Stripe takes pm_... ids that Stripe.js created):
it is never stored, never put in the audit log, never repeated in an error. A customer has at
most one default method (a partial unique index). When a customer whose latest charge was
declined (soft or hard) gets a new default method, their open invoices are retried at once.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from billing.gateways import get_gateway
from billing.gateways.base import PaymentGateway
from billing.models import Gateway, GatewayCustomer, PaymentAttempt, PaymentMethod
from billing.services.payments import payment_method_updated
from core import clock
from core.actors import Actor
from core.errors import ConflictError, NotFoundError
from core.services import audit_record, audit_snapshot
from customers.models import Customer


def payment_method_attach(
    *,
    customer: Customer,
    actor: Actor,
    card_number: str = "",
    exp_month: int | None = None,
    exp_year: int | None = None,
    payment_method_reference: str = "",
    make_default: bool = True,
    gateway: str | None = None,
) -> PaymentMethod:
    """Save a card for `customer` with the gateway (settings.PAYMENT_GATEWAY by default).

    The simulated gateway takes a test card number and expiry; Stripe a pm_... id. The new
    method becomes the default unless `make_default` is false and the customer has one.
    """
    name = gateway or settings.PAYMENT_GATEWAY
    if name not in Gateway.values:
        raise NotFoundError(f"No such gateway: {name!r}.", code="unknown_gateway", param="gateway")
    chosen = get_gateway(name)
    customer_reference = _gateway_customer(customer, chosen)
    saved = chosen.attach_payment_method(
        customer_reference=customer_reference,
        card_number=card_number,
        exp_month=exp_month,
        exp_year=exp_year,
        payment_method_reference=payment_method_reference,
    )
    with transaction.atomic(durable=True):
        current = _lock_default(customer)
        default = make_default or current is None
        if default and current is not None:
            _unset_default(current, actor=actor)
        method = PaymentMethod.objects.create(
            customer=customer,
            gateway=name,
            reference=saved.reference,
            brand=saved.brand,
            last4=saved.last4,
            exp_month=saved.exp_month,
            exp_year=saved.exp_year,
            is_default=default,
            created_at=clock.now(),
        )
        audit_record(
            actor=actor,
            action="payment_method.attach",
            instance=method,
            after=audit_snapshot(method),
        )
    if method.is_default:
        _retry_after_decline(customer, actor)
    return method


def payment_method_set_default(*, payment_method: PaymentMethod, actor: Actor) -> PaymentMethod:
    with transaction.atomic(durable=True):
        current = _lock_default(payment_method.customer)
        method = PaymentMethod.objects.select_for_update().get(pk=payment_method.pk)
        if method.status != PaymentMethod.Status.ACTIVE:
            raise ConflictError(
                "A detached payment method cannot be the default.", code="payment_method_detached"
            )
        if method.is_default:
            return method
        if current is not None:
            _unset_default(current, actor=actor)
        before = audit_snapshot(method)
        method.is_default = True
        method.save(update_fields=["is_default"])
        audit_record(
            actor=actor,
            action="payment_method.set_default",
            instance=method,
            before=before,
            after=audit_snapshot(method),
        )
    _retry_after_decline(method.customer, actor)
    return method


def payment_method_detach(*, payment_method: PaymentMethod, actor: Actor) -> PaymentMethod:
    """Remove a saved method (at the gateway too); it is never charged again. A detached
    default leaves the customer without one until they choose another."""
    if payment_method.status == PaymentMethod.Status.DETACHED:
        return payment_method
    get_gateway(payment_method.gateway).detach_payment_method(reference=payment_method.reference)
    with transaction.atomic(durable=True):
        method = PaymentMethod.objects.select_for_update().get(pk=payment_method.pk)
        if method.status == PaymentMethod.Status.DETACHED:
            return method
        before = audit_snapshot(method)
        method.status = PaymentMethod.Status.DETACHED
        method.is_default = False
        method.detached_at = clock.now()
        method.save(update_fields=["status", "is_default", "detached_at"])
        audit_record(
            actor=actor,
            action="payment_method.detach",
            instance=method,
            before=before,
            after=audit_snapshot(method),
        )
    return method


def _lock_default(customer: Customer) -> PaymentMethod | None:
    # Locking the customer row serializes default changes (two first methods saved at once
    # would both find no default); the partial unique index backs it up.
    Customer.objects.select_for_update().filter(pk=customer.pk).first()
    return (
        PaymentMethod.objects.select_for_update().filter(customer=customer, is_default=True).first()
    )


def _unset_default(method: PaymentMethod, *, actor: Actor) -> None:
    before = audit_snapshot(method)
    method.is_default = False
    method.save(update_fields=["is_default"])
    audit_record(
        actor=actor,
        action="payment_method.unset_default",
        instance=method,
        before=before,
        after=audit_snapshot(method),
    )


def _retry_after_decline(customer: Customer, actor: Actor) -> None:
    latest = (
        PaymentAttempt.objects.filter(customer=customer)
        .exclude(status__in=[PaymentAttempt.Status.PENDING, PaymentAttempt.Status.UNKNOWN])
        .order_by("-resolved_at", "-id")
        .first()
    )
    if latest is not None and latest.status == PaymentAttempt.Status.DECLINED:
        # Soft or hard: a customer who replaces a declined card expects to be charged now,
        # not at the next scheduled retry.
        payment_method_updated(customer=customer, actor=actor)


def _gateway_customer(customer: Customer, gateway: PaymentGateway) -> str:
    """The customer's reference at the gateway, created there the first time (outside any
    transaction: it is a call to the gateway)."""
    existing = (
        GatewayCustomer.objects.filter(customer=customer, gateway=gateway.name)
        .values_list("reference", flat=True)
        .first()
    )
    if existing is not None:
        return existing
    reference = gateway.create_customer(
        customer_id=customer.pk, email=customer.email, name=customer.name
    )
    GatewayCustomer.objects.bulk_create(
        [
            GatewayCustomer(
                customer=customer,
                gateway=gateway.name,
                reference=reference,
                created_at=clock.now(),
            )
        ],
        ignore_conflicts=True,
    )
    # A concurrent first save may have won: everyone uses the stored reference.
    return GatewayCustomer.objects.get(customer=customer, gateway=gateway.name).reference
