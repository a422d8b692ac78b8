"""Catalog fixtures: a default price list, a product and plans built through the services."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from catalog import services
from catalog.models import Meter, Plan, PlanMeter, PriceList, Product
from catalog.services import PhaseSpec, PriceSpec
from core.actors import SYSTEM, Actor


@pytest.fixture
def actor() -> Actor:
    return SYSTEM


@pytest.fixture
def default_list(clock: Any) -> PriceList:
    return services.price_list_create(
        code="default", name="Default", kind=PriceList.Kind.DEFAULT, actor=SYSTEM
    )


@pytest.fixture
def product(clock: Any) -> Product:
    return services.product_create(code="news", name="The Daily News", actor=SYSTEM)


@pytest.fixture
def addon_product(clock: Any) -> Product:
    return services.product_create(
        code="crosswords", name="Crosswords", kind=Product.Kind.ADDON, actor=SYSTEM
    )


@pytest.fixture
def make_plan(product: Product, default_list: PriceList) -> Callable[..., Plan]:
    """A plan with one evergreen phase priced 9.99 USD on the default list, unless told."""

    def make(
        code: str = "digital-monthly",
        *,
        billing_interval: str = "month",
        phases: list[PhaseSpec] | None = None,
        **kwargs: Any,
    ) -> Plan:
        return services.plan_create(
            product=kwargs.pop("for_product", product),
            code=code,
            name=kwargs.pop("name", code.replace("-", " ").title()),
            billing_interval=billing_interval,
            phases=[
                PhaseSpec(
                    kind="evergreen", prices=[PriceSpec(currency="USD", amount=Decimal("9.99"))]
                )
            ]
            if phases is None
            else phases,
            actor=SYSTEM,
            **kwargs,
        )

    return make


@pytest.fixture
def plan(make_plan: Callable[..., Plan]) -> Plan:
    return make_plan()


@pytest.fixture
def api_calls_meter(clock: Any) -> Meter:
    return services.meter_create(
        code="api-calls", name="API calls", aggregation=Meter.Aggregation.COUNT, actor=SYSTEM
    )


@pytest.fixture
def plan_meter(plan: Plan, api_calls_meter: Meter) -> PlanMeter:
    return services.plan_meter_create(
        plan=plan, meter=api_calls_meter, pricing=PlanMeter.Pricing.GRADUATED, actor=SYSTEM
    )
