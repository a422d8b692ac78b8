"""Apps above billing hear of payment outcomes here, without billing importing them.

Dependencies point one way (billing never imports subscriptions), yet dunning must learn at once
that an invoice was paid or that a charge of it was declined. An app registers a callback in its
`AppConfig.ready()` (as with core.clock's daily work); billing calls each one once per transaction
that recorded outcomes, with the ids of those invoices (many when a batch was charged), after
that transaction commits. A callback that fails is logged and never undoes the payment
(`robust`): the listener's own daily work catches up with billing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

from django.db import transaction

PaymentListener = Callable[[Sequence[int]], object]
_listeners: dict[str, PaymentListener] = {}


def register_payment_listener(name: str, listener: PaymentListener) -> None:
    """Call `listener(invoice_ids)` after every recorded payment outcome (a charge that
    succeeded, was declined or has no known outcome; an offline payment)."""
    _listeners[name] = listener


def unregister_payment_listener(name: str) -> None:
    _listeners.pop(name, None)


def payment_listeners() -> dict[str, PaymentListener]:
    return dict(_listeners)


def payment_outcomes_recorded(*, invoice_ids: Sequence[int]) -> None:
    """Billing's side: inside the transaction that recorded outcomes of `invoice_ids`."""
    ids = tuple(dict.fromkeys(invoice_ids))
    if not ids:
        return
    for listener in _listeners.values():
        transaction.on_commit(partial(listener, ids), robust=True)


def payment_outcome_recorded(*, invoice_id: int) -> None:
    """`payment_outcomes_recorded` of one invoice."""
    payment_outcomes_recorded(invoice_ids=[invoice_id])
