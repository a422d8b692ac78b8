"""Apps above billing hear of payment outcomes here, without billing importing them.

Dependencies point one way (billing never imports subscriptions), yet dunning must learn at once
that an invoice was paid or that a charge of it was declined. An app registers a callback in its
`AppConfig.ready()` (as with core.clock's daily work); billing calls each one with the invoice id
after the transaction that recorded the outcome commits. A callback that fails is logged and
never undoes the payment (`robust`): the listener's own daily work catches up with billing.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from django.db import transaction

PaymentListener = Callable[[int], object]
_listeners: dict[str, PaymentListener] = {}


def register_payment_listener(name: str, listener: PaymentListener) -> None:
    """Call `listener(invoice_id)` after every recorded payment outcome (a charge that succeeded,
    was declined or has no known outcome; an offline payment)."""
    _listeners[name] = listener


def unregister_payment_listener(name: str) -> None:
    _listeners.pop(name, None)


def payment_listeners() -> dict[str, PaymentListener]:
    return dict(_listeners)


def payment_outcome_recorded(*, invoice_id: int) -> None:
    """Billing's side: inside the transaction that recorded an outcome of `invoice_id`."""
    for listener in _listeners.values():
        transaction.on_commit(partial(listener, invoice_id), robust=True)
