"""Payment gateways behind one interface (`base.PaymentGateway`): `simulated` and `stripe`."""

from __future__ import annotations

from billing.gateways.base import PaymentGateway
from core.errors import ValidationError


def get_gateway(name: str) -> PaymentGateway:
    """The gateway called `name` (a saved payment method remembers which one saved it)."""
    if name == "simulated":
        from billing.gateways.simulated import SimulatedGateway

        return SimulatedGateway()
    if name == "stripe":
        from billing.gateways.stripe_gateway import StripeGateway

        return StripeGateway()
    raise ValidationError(f"No such payment gateway: {name!r}.", code="unknown_gateway")
