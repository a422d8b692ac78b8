"""The demo business behind `make run`: Northwind Media, a magazine and streaming publisher.

Everything goes through the same services as real data (validation, audit log). Seeding is
all-or-nothing and idempotent: when the demo catalog exists, only missing logins are added.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from django.contrib.auth.models import Group, Permission, User
from django.db import transaction

from api.models import ApiKey
from api.services import api_key_create
from catalog import services as catalog
from catalog.models import Coupon, Plan, PriceList, Product
from catalog.selectors import plan_final_phase
from core.actors import Actor
from customers.models import Customer
from customers.services import customer_create, customer_link_user, partner_create

ACTOR = Actor.system("seed_demo")
MARKER_PRODUCT = "northwind-digital"
DEMO_API_KEY = "sk_test_demo_northwind_media_2026_0000"


@dataclass(frozen=True)
class DemoLogin:
    role: str
    username: str
    password: str
    where: str


DEMO_LOGINS = (
    DemoLogin("admin", "admin", "northwind-admin", "/admin/"),
    DemoLogin("customer service", "support", "northwind-support", "/admin/"),
    DemoLogin("finance", "finance", "northwind-finance", "/admin/"),
    DemoLogin("demo customer", "reader@example.com", "northwind-reader", "customer portal login"),
)


@dataclass
class DemoSummary:
    created_catalog: bool
    logins: tuple[DemoLogin, ...] = DEMO_LOGINS
    api_key: str = DEMO_API_KEY
    counts: dict[str, int] = field(default_factory=dict)


# Monthly prices per currency (amount, annual amount). Annual = about 10 months.
TIERS = {
    "bronze": {
        "rank": 1,
        "USD": ("7.99", "79.00"),
        "EUR": ("7.49", "74.00"),
        "GBP": ("6.49", "64.00"),
        "JPY": ("1100", "11000"),
    },
    "silver": {
        "rank": 2,
        "USD": ("12.99", "129.00"),
        "EUR": ("11.99", "119.00"),
        "GBP": ("10.49", "104.00"),
        "JPY": ("1800", "18000"),
    },
    "gold": {
        "rank": 3,
        "USD": ("19.99", "199.00"),
        "EUR": ("18.99", "189.00"),
        "GBP": ("16.99", "169.00"),
        "JPY": ("2800", "28000"),
    },
}
GOLD_INTRO = {"USD": "9.99", "EUR": "9.49", "GBP": "8.49", "JPY": "1400"}
TIER_FEATURES = {
    "bronze": ["digital-magazine"],
    "silver": ["digital-magazine", "archive-access", "hd-streaming"],
    "gold": [
        "digital-magazine",
        "archive-access",
        "hd-streaming",
        "uhd-streaming",
        "offline-downloads",
        "ad-free",
    ],
}
FEATURES = {
    "digital-magazine": "Digital magazine",
    "archive-access": "Full archive since 1962",
    "hd-streaming": "HD streaming",
    "uhd-streaming": "4K streaming",
    "offline-downloads": "Offline downloads",
    "ad-free": "No advertising",
    "print-delivery": "Print edition delivered",
    "family-profiles": "Extra family profiles",
}
TAX_RATES = (
    ("California sales tax", "US", "CA", "7.25", False),
    ("New York sales tax", "US", "NY", "8.875", False),
    ("UK VAT", "GB", "", "20", True),
    ("German VAT", "DE", "", "19", True),
    ("French VAT", "FR", "", "20", True),
    ("Japanese consumption tax", "JP", "", "10", True),
    ("Ontario HST", "CA", "ON", "13", False),
)
DEMO_CUSTOMERS: tuple[tuple[str, str, str, str, str, str, str, list[str]], ...] = (
    # external id, name, email, currency, country, region, channel, segments
    ("demo-reader", "Robin Reader", "reader@example.com", "USD", "US", "CA", "organic", []),
    ("c-1001", "Ada Lovelace", "ada@example.com", "GBP", "GB", "", "paid_search", []),
    ("c-1002", "Kenji Sato", "kenji@example.jp", "JPY", "JP", "", "paid_social", []),
    ("c-1003", "Marie Curie", "marie@example.fr", "EUR", "FR", "", "referral", ["students"]),
    ("c-1004", "Grace Hopper", "grace@example.com", "USD", "US", "NY", "email", []),
    ("c-1005", "Hans Weber", "hans@example.de", "EUR", "DE", "", "events", []),
    ("c-1006", "Lucia Alves", "lucia@example.br", "USD", "BR", "", "organic", []),
)


def demo_seed() -> DemoSummary:
    """Create the demo business once; always make sure the demo logins and API key exist."""
    with transaction.atomic():
        created = not Product.objects.filter(code=MARKER_PRODUCT).exists()
        if created:
            _seed_catalog()
            _seed_customers()
        _seed_logins()
        _seed_api_key()
    return DemoSummary(
        created_catalog=created,
        counts={
            "plans": Plan.objects.count(),
            "customers": Customer.objects.count(),
            "coupons": Coupon.objects.count(),
        },
    )


def _prices(pairs: dict[str, str], price_list: PriceList | None = None) -> list[catalog.PriceSpec]:
    return [
        catalog.PriceSpec(currency=currency, amount=Decimal(amount), price_list=price_list)
        for currency, amount in pairs.items()
    ]


def _seed_catalog() -> None:
    features = {
        code: catalog.feature_create(code=code, name=name, actor=ACTOR)
        for code, name in FEATURES.items()
    }
    catalog.price_list_create(code="default", name="Standard prices", kind="default", actor=ACTOR)
    latam = catalog.price_list_create(
        code="latam",
        name="Latin America",
        kind="geography",
        countries=["BR", "MX", "AR"],
        actor=ACTOR,
    )
    students = catalog.price_list_create(
        code="students", name="Students", kind="segment", segment="students", actor=ACTOR
    )
    telco = catalog.price_list_create(
        code="telco-one", name="Telco One partner prices", kind="partner", actor=ACTOR
    )

    digital = catalog.product_create(
        code=MARKER_PRODUCT,
        name="Northwind Digital",
        actor=ACTOR,
        description="The magazine online, the archive and the streaming library.",
    )
    print_product = catalog.product_create(
        code="northwind-print",
        name="Northwind Print",
        delivery="physical",
        actor=ACTOR,
        description="The printed magazine, delivered every week.",
    )
    addon_product = catalog.product_create(
        code="northwind-extras", name="Northwind Extras", kind="addon", actor=ACTOR
    )

    profiles = catalog.plan_create(
        product=addon_product,
        code="extra-profile-monthly",
        name="Extra family profile",
        billing_interval="month",
        min_quantity=1,
        max_quantity=5,
        features=[features["family-profiles"]],
        phases=[
            catalog.PhaseSpec(
                kind="evergreen",
                prices=_prices({"USD": "2.00", "EUR": "2.00", "GBP": "1.50", "JPY": "300"}),
            )
        ],
        actor=ACTOR,
    )
    weekend_print = catalog.plan_create(
        product=addon_product,
        code="weekend-print-monthly",
        name="Weekend print edition",
        billing_interval="month",
        features=[features["print-delivery"]],
        phases=[
            catalog.PhaseSpec(
                kind="evergreen",
                prices=_prices({"USD": "6.00", "EUR": "5.50", "GBP": "5.00", "JPY": "800"}),
            )
        ],
        actor=ACTOR,
    )

    plans: dict[str, Plan] = {}
    for tier, spec in TIERS.items():
        for interval, index in (("month", 0), ("year", 1)):
            amounts = {c: spec[c][index] for c in ("USD", "EUR", "GBP", "JPY")}  # type: ignore[index]
            phases: list[catalog.PhaseSpec] = []
            if tier in ("silver", "gold") and interval == "month":
                phases.append(
                    catalog.PhaseSpec(kind="trial", duration_unit="day", duration_count=14)
                )
            if tier == "gold" and interval == "month":
                phases.append(
                    catalog.PhaseSpec(
                        kind="discount",
                        duration_unit="month",
                        duration_count=3,
                        prices=_prices(GOLD_INTRO),
                    )
                )
            final = catalog.PhaseSpec(kind="evergreen", prices=_prices(amounts))
            if interval == "year" and tier == "gold":
                final = catalog.PhaseSpec(
                    kind="fixed_term",
                    duration_unit="year",
                    duration_count=1,
                    renews=True,
                    prices=_prices(amounts),
                )
            phases.append(final)
            label = "Monthly" if interval == "month" else "Annual"
            plans[f"{tier}-{interval}"] = catalog.plan_create(
                product=digital,
                code=f"digital-{tier}-{label.lower()}",
                name=f"Digital {tier.capitalize()} {label}",
                billing_interval=interval,
                tier_rank=int(spec["rank"]),  # type: ignore[call-overload]
                features=[features[code] for code in TIER_FEATURES[tier]],
                addons=[profiles, weekend_print]
                if tier != "bronze" and interval == "month"
                else [],
                phases=phases,
                actor=ACTOR,
            )
    # Cheaper USD prices for Latin America and for students, on the evergreen phases.
    for key in ("bronze-month", "silver-month", "gold-month"):
        final_phase = plan_final_phase(plan=plans[key])
        if final_phase is None:
            raise RuntimeError(f"demo plan {key} has no phases")
        base = Decimal(TIERS[key.split("-")[0]]["USD"][0])  # type: ignore[index]
        catalog.price_create(
            phase=final_phase,
            currency="USD",
            price_list=latam,
            amount=(base * Decimal("0.6")).quantize(Decimal("0.01")),
            actor=ACTOR,
        )
        catalog.price_create(
            phase=final_phase,
            currency="USD",
            price_list=students,
            amount=(base * Decimal("0.5")).quantize(Decimal("0.01")),
            actor=ACTOR,
        )
        catalog.price_create(
            phase=final_phase,
            currency="USD",
            price_list=telco,
            amount=(base * Decimal("0.8")).quantize(Decimal("0.01")),
            actor=ACTOR,
        )

    print_monthly = catalog.plan_create(
        product=print_product,
        code="print-weekly-monthly",
        name="Print Weekly",
        billing_interval="month",
        tier_rank=1,
        features=[features["print-delivery"]],
        phases=[
            catalog.PhaseSpec(
                kind="evergreen",
                prices=[
                    catalog.PriceSpec(
                        currency="USD", amount=Decimal("14.00"), setup_fee=Decimal("5.00")
                    ),
                    catalog.PriceSpec(
                        currency="EUR", amount=Decimal("13.00"), setup_fee=Decimal("5.00")
                    ),
                    catalog.PriceSpec(
                        currency="GBP", amount=Decimal("11.00"), setup_fee=Decimal("4.00")
                    ),
                    catalog.PriceSpec(
                        currency="JPY", amount=Decimal("1900"), setup_fee=Decimal("700")
                    ),
                ],
            )
        ],
        actor=ACTOR,
    )
    catalog.bundle_create(
        code="print-digital",
        name="Print + Digital Silver",
        pricing="percent_discount",
        discount_percent=Decimal("20"),
        actor=ACTOR,
        description="The printed magazine and Digital Silver, 20% off together.",
        components=[
            catalog.BundleComponentSpec(plan=print_monthly),
            catalog.BundleComponentSpec(plan=plans["silver-month"]),
        ],
    )

    views = catalog.meter_create(
        code="pay-per-view",
        name="Pay-per-view rentals",
        aggregation="count",
        unit_label="rental",
        actor=ACTOR,
    )
    for key in ("silver-month", "gold-month"):
        plan_meter = catalog.plan_meter_create(
            plan=plans[key], meter=views, pricing="graduated", actor=ACTOR
        )
        for currency, (first, rest) in {
            "USD": ("3.99", "2.99"),
            "EUR": ("3.49", "2.49"),
            "GBP": ("2.99", "1.99"),
            "JPY": ("500", "400"),
        }.items():
            catalog.meter_price_create(
                plan_meter=plan_meter,
                currency=currency,
                actor=ACTOR,
                tiers=[
                    catalog.TierSpec(up_to=Decimal(5), unit_amount=Decimal(first)),
                    catalog.TierSpec(up_to=None, unit_amount=Decimal(rest)),
                ],
            )

    welcome = catalog.coupon_create(
        code="welcome10",
        name="Welcome: 10% off the first month",
        discount_type="percent",
        percent_off=Decimal("10"),
        duration="once",
        actor=ACTOR,
    )
    spring = catalog.coupon_create(
        code="spring25",
        name="Spring: 25% off for 3 months",
        discount_type="percent",
        percent_off=Decimal("25"),
        duration="repeating",
        duration_cycles=3,
        max_redemptions=1000,
        actor=ACTOR,
    )
    catalog.coupon_create(
        code="five-off",
        name="5 off once",
        discount_type="fixed",
        duration="once",
        actor=ACTOR,
        amounts=[
            catalog.CouponAmountSpec(currency=c, amount_off=Decimal(a))
            for c, a in {"USD": "5", "EUR": "5", "GBP": "4", "JPY": "700"}.items()
        ],
    )
    catalog.coupon_create(
        code="gold-loyalty",
        name="Gold loyalty: 15% forever",
        discount_type="percent",
        percent_off=Decimal("15"),
        duration="forever",
        actor=ACTOR,
        plans=[plans["gold-month"], plans["gold-year"]],
    )
    catalog.promotion_code_create(coupon=welcome, code="WELCOME", actor=ACTOR)
    catalog.promotion_code_create(coupon=spring, code="SPRING25", max_redemptions=500, actor=ACTOR)

    for name, country, region, percent, inclusive in TAX_RATES:
        catalog.tax_rate_create(
            name=name,
            country=country,
            region=region,
            percentage=Decimal(percent),
            inclusive=inclusive,
            actor=ACTOR,
        )


def _seed_customers() -> None:
    telco = PriceList.objects.get(code="telco-one")
    partner = partner_create(
        code="telco-one",
        name="Telco One",
        price_list=telco,
        contact_email="partners@telco.example",
        actor=ACTOR,
    )
    for external_id, name, email, currency, country, region, channel, segments in DEMO_CUSTOMERS:
        customer_create(
            external_id=external_id,
            name=name,
            email=email,
            currency=currency,
            country=country,
            region=region or None,
            acquisition_channel=channel,
            segments=segments,
            actor=ACTOR,
        )
    customer_create(
        external_id="telco-5001",
        name="Tomás Rivera",
        email="tomas@telco.example",
        currency="USD",
        country="MX",
        partner=partner,
        actor=ACTOR,
    )


def _group(name: str, codenames: list[str]) -> Group:
    group, _ = Group.objects.get_or_create(name=name)
    group.permissions.set(Permission.objects.filter(codename__in=codenames))
    return group


def _seed_logins() -> None:
    support = _group(
        "Customer service",
        [
            "view_customer",
            "change_customer",
            "view_interaction",
            "add_interaction",
            "view_plan",
            "view_product",
            "view_price",
            "view_coupon",
            "view_partner",
        ],
    )
    finance = _group(
        "Finance",
        [
            "view_customer",
            "view_plan",
            "view_price",
            "view_coupon",
            "view_taxrate",
            "view_auditlog",
            "view_partner",
            "view_pricelist",
        ],
    )
    for login in DEMO_LOGINS:
        if User.objects.filter(username=login.username).exists():
            continue
        if login.username == "admin":
            User.objects.create_superuser(login.username, "admin@example.com", login.password)
        elif login.role == "demo customer":
            user = User.objects.create_user(login.username, login.username, login.password)
            customer = Customer.objects.get(external_id="demo-reader")
            customer_link_user(customer=customer, user=user, actor=ACTOR)
        else:
            user = User.objects.create_user(
                login.username, f"{login.username}@example.com", login.password, is_staff=True
            )
            user.groups.add(support if login.username == "support" else finance)


def _seed_api_key() -> None:
    from api.services import api_key_hash

    if not ApiKey.objects.filter(key_hash=api_key_hash(DEMO_API_KEY)).exists():
        api_key_create(
            name="Demo key (admin)", scopes=["admin"], plaintext=DEMO_API_KEY, actor=ACTOR
        )
