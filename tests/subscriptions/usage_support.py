"""Builders for the usage and entitlement tests: catalog and customers made through their
services, subscriptions as plain rows in a given state (the lifecycle is not under test here).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from catalog import services as catalog
from catalog.models import Feature, Meter, Plan, PlanMeter, PriceList, Product
from catalog.services import PhaseSpec, PriceSpec, TierSpec
from core.actors import SYSTEM
from customers.models import Customer, Partner
from customers.services import customer_create
from subscriptions.models import Subscription

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)  # the `clock` fixture's time
JAN_1 = date(2026, 1, 1)
FEB_1 = date(2026, 2, 1)


def at(day: date, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, micro, tzinfo=UTC)


def tiers(*rows: tuple[str | None, str] | tuple[str | None, str, str]) -> list[TierSpec]:
    """`tiers(("100", "0.10"), (None, "0.05", "2.00"))`: (up_to, unit_amount[, flat_amount])."""
    return [
        TierSpec(
            up_to=None if row[0] is None else Decimal(row[0]),
            unit_amount=Decimal(row[1]),
            flat_amount=Decimal(row[2]) if len(row) > 2 else Decimal("0"),
        )
        for row in rows
    ]


@dataclass
class MeteredCharge:
    meter: Meter
    pricing: str
    prices: Sequence[tuple[str, list[TierSpec]]] = ()  # (currency, tiers) on the default list
    price_list_prices: Sequence[tuple[PriceList, str, list[TierSpec]]] = field(default=())


class Catalog:
    """A small catalog: one product, a default price list, meters, features and plans."""

    def __init__(self) -> None:
        self.default_list = catalog.price_list_create(
            code="default", name="Default", kind=PriceList.Kind.DEFAULT, actor=SYSTEM
        )
        self.product = catalog.product_create(code="api", name="The API", actor=SYSTEM)
        self.addon_product = catalog.product_create(
            code="extras", name="Extras", kind=Product.Kind.ADDON, actor=SYSTEM
        )

    def meter(self, code: str, aggregation: str, field_name: str = "", **kw: Any) -> Meter:
        return catalog.meter_create(
            code=code,
            name=kw.pop("name", code.replace("-", " ").capitalize()),
            aggregation=aggregation,
            field_name=field_name,
            actor=SYSTEM,
            **kw,
        )

    def feature(self, code: str, name: str | None = None) -> Feature:
        return catalog.feature_create(
            code=code, name=name or code.replace("-", " ").title(), actor=SYSTEM
        )

    def plan(
        self,
        code: str,
        *,
        charges: Iterable[MeteredCharge] = (),
        features: Iterable[Feature] = (),
        addon: bool = False,
        amount: str = "10.00",
        currencies: Sequence[str] = ("USD",),
        trial_days: int | None = None,
    ) -> Plan:
        phases = [
            PhaseSpec(
                kind="evergreen",
                prices=[PriceSpec(currency=c, amount=Decimal(amount)) for c in currencies],
            )
        ]
        if trial_days is not None:
            trial = PhaseSpec(
                kind="trial",
                duration_unit="day",
                duration_count=trial_days,
                prices=[PriceSpec(currency=c, amount=Decimal(0)) for c in currencies],
            )
            phases.insert(0, trial)
        plan = catalog.plan_create(
            product=self.addon_product if addon else self.product,
            code=code,
            name=code.replace("-", " ").title(),
            billing_interval="month",
            phases=phases,
            features=list(features),
            actor=SYSTEM,
        )
        for charge in charges:
            plan_meter = catalog.plan_meter_create(
                plan=plan, meter=charge.meter, pricing=charge.pricing, actor=SYSTEM
            )
            for currency, tier_specs in charge.prices:
                self.meter_price(plan_meter, currency, tier_specs)
            for price_list, currency, tier_specs in charge.price_list_prices:
                self.meter_price(plan_meter, currency, tier_specs, price_list=price_list)
        return plan

    def meter_price(
        self,
        plan_meter: PlanMeter,
        currency: str,
        tier_specs: list[TierSpec],
        *,
        price_list: PriceList | None = None,
        effective_from: date | None = None,
    ) -> None:
        catalog.meter_price_create(
            plan_meter=plan_meter,
            currency=currency,
            tiers=tier_specs,
            price_list=price_list,
            effective_from=effective_from,
            actor=SYSTEM,
        )


_customer_numbers = iter(range(1, 1_000_000))


def make_customer(*, partner: Partner | None = None, **fields: Any) -> Customer:
    number = next(_customer_numbers)
    fields.setdefault("external_id", f"usage-cus-{number}")
    fields.setdefault("email", f"usage{number}@example.com")
    fields.setdefault("name", f"Usage Customer {number}")
    fields.setdefault("currency", "USD")
    if partner is not None:
        fields["partner"] = partner
    return customer_create(actor=SYSTEM, **fields)


def make_subscription(
    customer: Customer,
    plan: Plan,
    *,
    status: str = Subscription.Status.ACTIVE,
    start_on: date = JAN_1,
    period: tuple[date, date] | None = (JAN_1, FEB_1),
    currency: str = "USD",
    price_list: PriceList | None = None,
    pricing_date: date | None = None,
    **fields: Any,
) -> Subscription:
    """A subscription row in the given state, as the lifecycle would have left it."""
    phase = plan.phases.order_by("-sequence").first()
    assert phase is not None
    if status == Subscription.Status.CANCELED:
        fields.setdefault("ended_on", start_on)
        fields.setdefault("canceled_at", NOW)
    if status == Subscription.Status.PAUSED:
        fields.setdefault("paused_on", start_on)
    return Subscription.objects.create(
        customer=customer,
        plan=plan,
        phase=phase,
        price_list=price_list or PriceList.objects.get(kind=PriceList.Kind.DEFAULT),
        currency=currency,
        pricing_date=pricing_date or start_on,
        status=status,
        start_on=start_on,
        phase_started_on=start_on,
        billing_anchor=start_on,
        current_period_start=period[0] if period else None,
        current_period_end=period[1] if period else None,
        billed_through=period[1] if period else None,
        next_transition_on=period[1] if period else None,
        created_at=NOW,
        updated_at=NOW,
        **fields,
    )
