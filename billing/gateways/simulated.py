"""The built-in gateway for demo and embedded mode: test card numbers, no network.

It behaves like a real gateway where it matters: a card number is turned into a token at the
door and never kept (only the test card's behaviour, brand and last four digits are), and
charges and refunds are stored under the caller's idempotency key, so the same key never moves
money twice and `lookup_charge` can tell what became of a call whose answer was lost.

Test cards (any future expiry; every card attaches, the declines happen at charge time):

    4242424242424242  succeeds (Visa)            5555555555554444  succeeds (Mastercard)
    4000000000000002  generic decline (soft)      4000000000009995  insufficient funds (soft)
    4000000000000127  incorrect CVC (soft)        4000000000000341  declines at charge (soft)
    4000000000009979  stolen card (hard)          4000000000009987  lost card (hard)
    4000000000000069  expired card (hard)
    4000000000000119  processing error: outcome unknown, nothing charged
    4000000000006975  timeout: outcome unknown, but the charge went through

Any other number that passes the Luhn check succeeds.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Sequence
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from django.db import connection, transaction

from billing.gateways.base import (
    ChargeRequest,
    ChargeResult,
    PaymentGateway,
    RefundResult,
    SavedCard,
)
from billing.models import SimulatedCard, SimulatedCharge, SimulatedRefund
from core import clock
from core.errors import ValidationError

SUCCEED = "succeed"
PROCESSING_ERROR = "processing_error"
TIMEOUT = "timeout"
DECLINE = "decline:"

TEST_CARDS: dict[str, str] = {
    "4242424242424242": SUCCEED,
    "5555555555554444": SUCCEED,
    "4000000000000002": DECLINE + "generic_decline",
    "4000000000009995": DECLINE + "insufficient_funds",
    "4000000000000127": DECLINE + "incorrect_cvc",
    "4000000000000341": DECLINE + "generic_decline",
    "4000000000009979": DECLINE + "stolen_card",
    "4000000000009987": DECLINE + "lost_card",
    "4000000000000069": DECLINE + "expired_card",
    "4000000000000119": PROCESSING_ERROR,
    "4000000000006975": TIMEOUT,
}

DECLINE_MESSAGES = {
    "generic_decline": "Your card was declined.",
    "insufficient_funds": "Your card has insufficient funds.",
    "incorrect_cvc": "Your card's security code is incorrect.",
    "stolen_card": "Your card was declined.",
    "lost_card": "Your card was declined.",
    "expired_card": "Your card has expired.",
}


def card_brand(number: str) -> str:
    if number.startswith("4"):
        return "visa"
    if number[:2] in {"51", "52", "53", "54", "55"} or 2221 <= int(number[:4]) <= 2720:
        return "mastercard"
    if number[:2] in {"34", "37"}:
        return "amex"
    if number.startswith(("6011", "65")):
        return "discover"
    return "unknown"


def luhn_valid(number: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(number)):
        digit = int(char)
        if index % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def _invalid_card(message: str, code: str = "invalid_number", param: str = "card_number") -> None:
    raise ValidationError(message, code=code, param=param)


class SimulatedGateway(PaymentGateway):
    name = "simulated"

    def create_customer(self, *, customer_id: int, email: str, name: str) -> str:
        return f"simcus_{customer_id}"

    def attach_payment_method(
        self,
        *,
        customer_reference: str,
        card_number: str = "",
        exp_month: int | None = None,
        exp_year: int | None = None,
        payment_method_reference: str = "",
    ) -> SavedCard:
        if payment_method_reference:
            _invalid_card(
                "The simulated gateway takes a test card number, not a payment method id.",
                code="card_number_required",
            )
        number = "".join(char for char in card_number if char not in " -")
        if not (number.isdigit() and 12 <= len(number) <= 19 and luhn_valid(number)):
            # The message never repeats the number: it must not end up in any log.
            _invalid_card("This is not a valid card number.")
        if exp_month is None or exp_year is None or not 1 <= exp_month <= 12:
            raise ValidationError(
                "Give the expiry month (1-12) and year.", code="invalid_expiry", param="exp_month"
            )
        year = exp_year + 2000 if exp_year < 100 else exp_year
        today = clock.today()
        if (year, exp_month) < (today.year, today.month) or year > today.year + 50:
            _invalid_card("The card has expired.", "expired_card", "exp_year")
        behavior = TEST_CARDS.get(number, SUCCEED)
        card = SimulatedCard.objects.create(
            token=f"simtok_{secrets.token_hex(12)}",
            customer_reference=customer_reference,
            behavior=behavior,
            brand=card_brand(number),
            last4=number[-4:],
            created_at=clock.now(),
        )
        return SavedCard(
            reference=card.token,
            brand=card.brand,
            last4=card.last4,
            exp_month=exp_month,
            exp_year=year,
        )

    def detach_payment_method(self, *, reference: str) -> None:
        """Nothing to do: a detached token is never charged again by the platform."""

    def charge(
        self,
        *,
        amount: Decimal,
        currency: str,
        customer_reference: str,
        payment_method_reference: str,
        idempotency_key: str,
        description: str,
    ) -> ChargeResult:
        (result,) = self.charge_many(
            [
                ChargeRequest(
                    amount=amount,
                    currency=currency,
                    customer_reference=customer_reference,
                    payment_method_reference=payment_method_reference,
                    idempotency_key=idempotency_key,
                    description=description,
                )
            ]
        )
        return result

    def charge_many(self, requests: Sequence[ChargeRequest]) -> list[ChargeResult]:
        """Each request answered as a gateway would, in at most four queries whatever their
        number: a key charged before (earlier in the batch too) replays its first outcome; a
        new charge is inserted ON CONFLICT DO NOTHING, and the charge of a key a twin call
        inserted first (racing with the same key) is read back and replayed.

        Plain statements over columns, on the gateway's own tables: a billing run's chunk
        sends hundreds of requests, for which model instances would cost more than the rest."""
        previous = _charges({request.idempotency_key for request in requests})
        tokens = {r.payment_method_reference for r in requests if r.idempotency_key not in previous}
        behaviors = _behaviors(tokens) if tokens else {}
        answers: list[ChargeResult | None] = []
        new: dict[str, _NewCharge] = {}
        for request in requests:
            key = request.idempotency_key
            behavior = behaviors.get(request.payment_method_reference)
            if key in previous:
                answers.append(_result(previous[key]))
            elif key in new:
                answers.append(None)  # the same key earlier in the batch: replayed below
            elif behavior is None:
                answers.append(
                    ChargeResult.declined("invalid_payment_method", "No such payment method.")
                )
            elif behavior == PROCESSING_ERROR:
                answers.append(ChargeResult.unknown("The gateway reported a processing error."))
            else:
                declined = behavior.startswith(DECLINE)
                charge = _Charge(
                    reference=f"simch_{secrets.token_hex(12)}",
                    status="declined" if declined else "succeeded",
                    decline_code=behavior.removeprefix(DECLINE) if declined else "",
                )
                new[key] = _NewCharge(charge, request, behavior)
                answers.append(None)
        stored: dict[str, _Charge] = {}
        mine: set[str] = set()  # the keys this call stored
        if new:
            mine = _insert_charges(new.values(), now=clock.now())
            stored = {key: new[key].charge for key in mine}
            if len(mine) < len(new):
                stored.update(_charges({key for key in new if key not in mine}))
        results = []
        for request, answer in zip(requests, answers, strict=True):
            key = request.idempotency_key
            if answer is None:
                made = new.pop(key, None)  # the batch's first of its key
                if made is not None and key in mine:
                    answer = _answer(stored[key], made.behavior)
                else:
                    answer = _result(stored[key])
            results.append(answer)
        return results

    def lookup_charge(
        self, *, idempotency_key: str, customer_reference: str
    ) -> ChargeResult | None:
        charge = _charges([idempotency_key]).get(idempotency_key)
        return _result(charge) if charge is not None else None

    def refund(
        self, *, charge_reference: str, amount: Decimal, currency: str, idempotency_key: str
    ) -> RefundResult:
        previous = SimulatedRefund.objects.filter(idempotency_key=idempotency_key).first()
        if previous is not None:
            return RefundResult("succeeded", reference=previous.reference)
        with transaction.atomic():
            charge = (
                SimulatedCharge.objects.select_for_update()
                .filter(reference=charge_reference, status="succeeded")
                .first()
            )
            if charge is None:
                return RefundResult("failed", message="No such charge.")
            # Under the charge's lock: a twin call with the same key has finished by now.
            previous = SimulatedRefund.objects.filter(idempotency_key=idempotency_key).first()
            if previous is not None:
                return RefundResult("succeeded", reference=previous.reference)
            if amount <= 0 or charge.amount_refunded + amount > charge.amount:
                return RefundResult(
                    "failed", message="The refund exceeds what is left of the charge."
                )
            refund = SimulatedRefund.objects.create(
                idempotency_key=idempotency_key,
                reference=f"simre_{secrets.token_hex(12)}",
                charge=charge,
                amount=amount,
                created_at=clock.now(),
            )
            charge.amount_refunded += amount
            charge.save(update_fields=["amount_refunded"])
        return RefundResult("succeeded", reference=refund.reference)

    def lookup_refund(self, *, charge_reference: str, idempotency_key: str) -> RefundResult | None:
        refund = SimulatedRefund.objects.filter(idempotency_key=idempotency_key).first()
        return RefundResult("succeeded", reference=refund.reference) if refund else None


class _Charge(NamedTuple):
    """A stored charge, as far as an answer tells of it."""

    reference: str
    status: str  # succeeded | declined
    decline_code: str


class _NewCharge(NamedTuple):
    charge: _Charge
    request: ChargeRequest
    behavior: str  # the card's


_CHARGES = SimulatedCharge._meta.db_table
_CARDS = SimulatedCard._meta.db_table


def _charges(keys: Collection[str]) -> dict[str, _Charge]:
    """The charges stored under `keys`, by key."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT idempotency_key, reference, status, decline_code FROM {_CHARGES} "  # noqa: S608 - our table
            "WHERE idempotency_key = ANY(%s)",
            [list(keys)],
        )
        return {key: _Charge(*charge) for key, *charge in cursor.fetchall()}


def _behaviors(tokens: Collection[str]) -> dict[str, str]:
    """What each of these tokens' test cards does, by token."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT token, behavior FROM {_CARDS} WHERE token = ANY(%s)",  # noqa: S608 - our table
            [list(tokens)],
        )
        return dict(cursor.fetchall())


def _insert_charges(new: Collection[_NewCharge], *, now: datetime) -> set[str]:
    """Store each new charge unless its key is taken (by a twin call: one still in flight is
    waited for); the keys of those stored."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_CHARGES} (idempotency_key, reference, token, amount, currency, "  # noqa: S608 - our table
            "status, decline_code, amount_refunded, created_at) "
            "SELECT k, r, t, a, c, s, d, 0, %s FROM unnest(%s::varchar[], %s::varchar[], "
            "%s::varchar[], %s::numeric[], %s::varchar[], %s::varchar[], %s::varchar[]) "
            "AS n(k, r, t, a, c, s, d) "
            "ON CONFLICT (idempotency_key) DO NOTHING RETURNING idempotency_key",
            [
                now,
                [n.request.idempotency_key for n in new],
                [n.charge.reference for n in new],
                [n.request.payment_method_reference for n in new],
                [n.request.amount for n in new],
                [n.request.currency for n in new],
                [n.charge.status for n in new],
                [n.charge.decline_code for n in new],
            ],
        )
        return {key for (key,) in cursor.fetchall()}


def _answer(charge: _Charge, behavior: str) -> ChargeResult:
    """The answer to the call that made `charge`."""
    if behavior == TIMEOUT:
        return ChargeResult.unknown("The gateway did not answer in time.")
    return _result(charge)


def _result(charge: _Charge) -> ChargeResult:
    if charge.status == "succeeded":
        return ChargeResult.succeeded(charge.reference)
    return ChargeResult.declined(
        charge.decline_code,
        DECLINE_MESSAGES.get(charge.decline_code, "Your card was declined."),
        reference=charge.reference,
    )
