"""Stripe's webhooks in: verified, stored raw first, then processed once, in a transaction.

The signature (Stripe-Signature header, settings.STRIPE_WEBHOOK_SECRET) is checked before
anything is stored. The raw event is stored under its unique event id before it is looked at,
so a delivery is never lost; processing then runs in a transaction with the event row locked,
and records `processed`, `ignored` (not about anything of ours) or `failed` with the error (the
event can be processed again later). A second delivery of a processed event does nothing.

Handled: payment_intent.succeeded / payment_intent.payment_failed (settle the attempt whose
idempotency key the PaymentIntent carries), charge.refunded and refund.updated (refunds made in
Stripe's dashboard are recorded and booked), charge.dispute.created / charge.dispute.closed
(a Dispute, booked).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import stripe
from django.conf import settings
from django.db import transaction
from django.db.models import Q

from billing.gateways.base import ChargeResult, RefundResult, from_minor
from billing.models import Dispute, Gateway, Payment, PaymentAttempt, Refund, StripeEvent
from billing.services.bookings import book_dispute
from billing.services.invoices import _lock_invoice
from billing.services.payments import payment_attempt_record_outcome
from billing.services.refunds import _record as refund_record
from billing.services.refunds import _set_payment_status, refund_record_from_gateway
from core import clock
from core.actors import Actor
from core.errors import ApplicationError, ConflictError, ValidationError
from core.money import normalize_currency
from core.services import audit_record, audit_snapshot

WEBHOOK = Actor.system("stripe webhook")


def stripe_event_receive(*, payload: bytes, signature: str) -> StripeEvent:
    """Verify, store and process one delivery; returns the stored event."""
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        raise ValidationError(
            "Stripe webhooks are not configured (STRIPE_WEBHOOK_SECRET).",
            code="webhook_not_configured",
        )
    try:
        stripe.Webhook.construct_event(payload, signature, secret)
    except stripe.SignatureVerificationError:
        raise ValidationError(
            "The Stripe-Signature header does not match this payload.",
            code="invalid_signature",
            param="Stripe-Signature",
        ) from None
    except ValueError:
        raise ValidationError(
            "The payload is not a Stripe event.", code="invalid_payload"
        ) from None
    body = json.loads(payload)
    if not isinstance(body, dict) or not isinstance(body.get("id"), str):
        raise ValidationError("The payload is not a Stripe event.", code="invalid_payload")
    with transaction.atomic():
        StripeEvent.objects.bulk_create(
            [
                StripeEvent(
                    event_id=body["id"],
                    type=str(body.get("type", "")),
                    payload=body,
                    received_at=clock.now(),
                )
            ],
            ignore_conflicts=True,
        )
    return stripe_event_process(event=StripeEvent.objects.get(event_id=body["id"]))


def stripe_event_process(*, event: StripeEvent, actor: Actor = WEBHOOK) -> StripeEvent:
    """Process a stored event once (again, if it failed before)."""
    with transaction.atomic():
        locked = StripeEvent.objects.select_for_update().get(pk=event.pk)
        if locked.status in (StripeEvent.Status.PROCESSED, StripeEvent.Status.IGNORED):
            return locked
        try:
            with transaction.atomic():
                handled = _dispatch(locked, actor)
        except ApplicationError as error:
            locked.status = StripeEvent.Status.FAILED
            locked.error = f"{error.code}: {error.message}"
        else:
            locked.status = StripeEvent.Status.PROCESSED if handled else StripeEvent.Status.IGNORED
            locked.error = ""
        locked.processed_at = clock.now()
        locked.save(update_fields=["status", "error", "processed_at"])
    return locked


def _dispatch(event: StripeEvent, actor: Actor) -> bool:
    obj = (event.payload.get("data") or {}).get("object") or {}
    if not isinstance(obj, dict):
        return False
    if event.type in ("payment_intent.succeeded", "payment_intent.payment_failed"):
        return _payment_intent(event.type, obj, actor)
    if event.type == "charge.refunded":
        return _charge_refunded(obj, actor)
    if event.type in ("refund.updated", "charge.refund.updated", "refund.created"):
        return _refund_updated(obj, actor)
    if event.type == "charge.dispute.created":
        return _dispute(obj, actor, closing=False)
    if event.type == "charge.dispute.closed":
        return _dispute(obj, actor, closing=True)
    return False


def _id(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("id") or "")
    return str(value or "")


def _amount(obj: dict[str, Any], field: str) -> tuple[Decimal, str]:
    currency = normalize_currency(str(obj.get("currency", "")))
    value = obj.get(field)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValidationError(f"The event has no integer {field}.", code="invalid_payload")
    return from_minor(value, currency), currency


def _stripe_payment(intent_id: str) -> Payment | None:
    if not intent_id:
        return None
    return Payment.objects.filter(gateway=Gateway.STRIPE, gateway_reference=intent_id).first()


def _payment_intent(kind: str, intent: dict[str, Any], actor: Actor) -> bool:
    key = str((intent.get("metadata") or {}).get("idempotency_key") or "")
    attempt = PaymentAttempt.objects.filter(
        Q(idempotency_key=key) if key else Q(gateway_reference=_id(intent), gateway=Gateway.STRIPE)
    ).first()
    if attempt is None:
        return False
    if kind == "payment_intent.succeeded":
        result = ChargeResult.succeeded(_id(intent))
    else:
        error = intent.get("last_payment_error") or {}
        result = ChargeResult.declined(
            str(error.get("decline_code") or error.get("code") or ""),
            str(error.get("message") or ""),
            reference=_id(intent),
        )
    invoice = _lock_invoice(attempt.invoice)
    locked = PaymentAttempt.objects.select_for_update().get(pk=attempt.pk)
    settled = {
        PaymentAttempt.Status.SUCCEEDED: "succeeded",
        PaymentAttempt.Status.DECLINED: "declined",
    }.get(PaymentAttempt.Status(locked.status))
    if settled is not None and settled != result.status:
        raise ConflictError(
            f"Attempt {locked} was recorded {locked.status} but Stripe reports {result.status}: "
            "check it by hand.",
            code="attempt_outcome_mismatch",
        )
    payment_attempt_record_outcome(attempt=locked, invoice=invoice, result=result, actor=actor)
    return True


def _charge_refunded(charge: dict[str, Any], actor: Actor) -> bool:
    payment = _stripe_payment(_id(charge.get("payment_intent")))
    if payment is None:
        return False
    refunded, _ = _amount(charge, "amount_refunded")
    # Stripe's cumulative figure against ours (refunds not failed): only the difference is new.
    missing = refunded - payment.amount_refunded
    if missing > 0:
        refund_record_from_gateway(
            payment=payment, amount=missing, gateway_reference="", actor=actor
        )
    return True


def _refund_updated(data: dict[str, Any], actor: Actor) -> bool:
    key = str((data.get("metadata") or {}).get("idempotency_key") or "")
    refund_id = _id(data)
    refund = Refund.objects.filter(
        Q(idempotency_key=key) | Q(gateway_reference=refund_id)
        if key
        else Q(gateway_reference=refund_id)
    ).first()
    status = str(data.get("status") or "")
    if refund is not None:
        locked = Refund.objects.select_for_update().get(pk=refund.pk)
        if status in ("succeeded", "pending"):
            refund_record(locked, RefundResult("succeeded", reference=refund_id), actor=actor)
        elif status in ("failed", "canceled"):
            if locked.status == Refund.Status.SUCCEEDED:
                raise ConflictError(
                    f"Refund #{locked.pk} was paid but Stripe now reports it {status}: check it "
                    "by hand.",
                    code="refund_failed_after_success",
                )
            refund_record(locked, RefundResult("failed", reference=refund_id), actor=actor)
        return True
    if status not in ("succeeded", "pending"):
        return False
    payment = _stripe_payment(_id(data.get("payment_intent")))
    if payment is None:
        return False
    amount, _ = _amount(data, "amount")
    # Already recorded from charge.refunded (which carries no refund id): adopt that one.
    unnamed = (
        Refund.objects.select_for_update()
        .filter(
            payment=payment,
            origin=Refund.Origin.GATEWAY,
            gateway_reference="",
            amount=amount,
        )
        .first()
    )
    if unnamed is not None:
        unnamed.gateway_reference = refund_id
        unnamed.save(update_fields=["gateway_reference"])
        return True
    refund_record_from_gateway(
        payment=payment, amount=amount, gateway_reference=refund_id, actor=actor
    )
    return True


DISPUTE_OUTCOMES = {"won": Dispute.Status.WON, "warning_closed": Dispute.Status.WON}


def _dispute(data: dict[str, Any], actor: Actor, *, closing: bool) -> bool:
    reference = _id(data)
    dispute = Dispute.objects.select_for_update().filter(gateway_reference=reference).first()
    if dispute is None:
        payment = _stripe_payment(_id(data.get("payment_intent")))
        if payment is None:
            return False
        amount, currency = _amount(data, "amount")
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        dispute = Dispute.objects.create(
            payment=payment,
            customer_id=payment.customer_id,
            gateway_reference=reference,
            amount=amount,
            currency=currency,
            reason=str(data.get("reason") or "")[:64],
            opened_at=clock.now(),
        )
        before = audit_snapshot(payment)
        payment.status = Payment.Status.DISPUTED
        payment.save(update_fields=["status"])
        book_dispute(dispute=dispute, stage="opened", effective_date=clock.today())
        audit_record(
            actor=actor, action="dispute.open", instance=dispute, after=audit_snapshot(dispute)
        )
        audit_record(
            actor=actor,
            action="payment.dispute",
            instance=payment,
            before=before,
            after=audit_snapshot(payment),
        )
    if not closing or dispute.status != Dispute.Status.OPEN:
        return True
    outcome = DISPUTE_OUTCOMES.get(str(data.get("status")), Dispute.Status.LOST)
    before = audit_snapshot(dispute)
    dispute.status = outcome
    dispute.closed_at = clock.now()
    dispute.save(update_fields=["status", "closed_at"])
    book_dispute(dispute=dispute, stage=str(outcome), effective_date=clock.today())
    audit_record(
        actor=actor,
        action=f"dispute.{outcome}",
        instance=dispute,
        before=before,
        after=audit_snapshot(dispute),
    )
    if outcome == Dispute.Status.WON:
        payment = Payment.objects.select_for_update().get(pk=dispute.payment_id)
        payment.status = Payment.Status.SUCCEEDED
        _set_payment_status(payment)
        payment.save(update_fields=["status"])
    return True
