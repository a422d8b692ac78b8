"""The catalog: products, plans with their phases and prices, price lists, features, bundles,
coupons and promotion codes, tax rates, meters and metered prices.

Every key can read the catalog; only non-partner keys with the write scope can change it.
Nothing is ever deleted: what was sold is archived (`POST /{id}/archive`), and a price is
changed by adding a version with a later `effective_from`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import django_filters
from django.db.models import Prefetch, QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from api.base import PlatformViewSet
from api.serializers import catalog as shapes
from catalog import services
from catalog.models import (
    Bundle,
    Coupon,
    Feature,
    Meter,
    MeterPrice,
    Plan,
    PlanMeter,
    PlanPhase,
    Price,
    PriceList,
    Product,
    PromotionCode,
    TaxRate,
)

# --- filters ------------------------------------------------------------------------------------


class ArchivedFilterSet(django_filters.FilterSet):
    archived = django_filters.BooleanFilter(
        method="filter_archived", label="true: archived only; false: active only."
    )

    def filter_archived(self, queryset: QuerySet[Any], name: str, value: bool) -> QuerySet[Any]:
        return queryset.filter(archived_at__isnull=not value)


class FeatureFilter(ArchivedFilterSet):
    class Meta:
        model = Feature
        fields = ["code"]


class ProductFilter(ArchivedFilterSet):
    class Meta:
        model = Product
        fields = ["code", "kind", "delivery"]


class PlanFilter(ArchivedFilterSet):
    product = django_filters.CharFilter(field_name="product__code", label="Product code.")
    feature = django_filters.CharFilter(field_name="features__code", label="Feature code.")

    class Meta:
        model = Plan
        fields = ["code", "product", "billing_interval", "feature"]


class PriceFilter(django_filters.FilterSet):
    plan = django_filters.CharFilter(field_name="phase__plan__code", label="Plan code.")
    phase = django_filters.NumberFilter(field_name="phase__sequence", label="Phase sequence.")
    currency = django_filters.CharFilter(method="filter_currency", label="ISO 4217.")
    price_list = django_filters.CharFilter(field_name="price_list__code", label="Price list code.")

    class Meta:
        model = Price
        fields = ["plan", "phase", "currency", "price_list"]

    def filter_currency(self, queryset: QuerySet[Any], name: str, value: str) -> QuerySet[Any]:
        return queryset.filter(currency=value.strip().upper())


class PriceListFilter(ArchivedFilterSet):
    country = django_filters.CharFilter(method="filter_country", label="ISO 3166-1 alpha-2.")

    class Meta:
        model = PriceList
        fields = ["code", "kind", "segment", "country"]

    def filter_country(self, queryset: QuerySet[Any], name: str, value: str) -> QuerySet[Any]:
        return queryset.filter(countries__contains=[value.strip().upper()])


class BundleFilter(ArchivedFilterSet):
    plan = django_filters.CharFilter(
        field_name="components__plan__code", label="Bundles containing this plan code."
    )

    class Meta:
        model = Bundle
        fields = ["code", "pricing", "plan"]


class CouponFilter(ArchivedFilterSet):
    plan = django_filters.CharFilter(
        field_name="plans__code", label="Coupons restricted to this plan code."
    )

    class Meta:
        model = Coupon
        fields = ["code", "discount_type", "duration", "plan"]


class PromotionCodeFilter(django_filters.FilterSet):
    coupon = django_filters.CharFilter(field_name="coupon__code", label="Coupon code.")
    code = django_filters.CharFilter(method="filter_code", label="The code, any case.")

    class Meta:
        model = PromotionCode
        fields = ["coupon", "code", "active"]

    def filter_code(self, queryset: QuerySet[Any], name: str, value: str) -> QuerySet[Any]:
        return queryset.filter(code=value.strip().upper())


class TaxRateFilter(django_filters.FilterSet):
    country = django_filters.CharFilter(method="filter_upper", label="ISO 3166-1 alpha-2.")
    region = django_filters.CharFilter(method="filter_upper", label="ISO 3166-2 subdivision.")
    archived = django_filters.BooleanFilter(
        field_name="active", exclude=True, label="true: inactive only; false: active only."
    )

    class Meta:
        model = TaxRate
        fields = ["country", "region", "active", "inclusive", "archived"]

    def filter_upper(self, queryset: QuerySet[Any], name: str, value: str) -> QuerySet[Any]:
        return queryset.filter(**{name: value.strip().upper()})


class MeterFilter(ArchivedFilterSet):
    class Meta:
        model = Meter
        fields = ["code", "aggregation"]


class PlanMeterFilter(django_filters.FilterSet):
    plan = django_filters.CharFilter(field_name="plan__code", label="Plan code.")
    meter = django_filters.CharFilter(field_name="meter__code", label="Meter code.")

    class Meta:
        model = PlanMeter
        fields = ["plan", "meter", "pricing"]


class MeterPriceFilter(django_filters.FilterSet):
    plan = django_filters.CharFilter(field_name="plan_meter__plan__code", label="Plan code.")
    meter = django_filters.CharFilter(field_name="plan_meter__meter__code", label="Meter code.")
    currency = django_filters.CharFilter(method="filter_currency", label="ISO 4217.")
    price_list = django_filters.CharFilter(field_name="price_list__code", label="Price list code.")

    class Meta:
        model = MeterPrice
        fields = ["plan_meter", "plan", "meter", "currency", "price_list"]

    def filter_currency(self, queryset: QuerySet[Any], name: str, value: str) -> QuerySet[Any]:
        return queryset.filter(currency=value.strip().upper())


# --- the shared shape of a catalog resource -----------------------------------------------------


class CatalogReadCreateViewSet(PlatformViewSet):
    """list / create / retrieve, each calling one service (price versions stop here)."""

    partner_writes = False
    lookup_value_regex = "[0-9]+"
    http_method_names = ["get", "post", "head", "options"]
    output: type[serializers.Serializer]
    create_input: type[serializers.Serializer]
    create_service: Callable[..., Any]

    def get_serializer_class(self) -> type[serializers.Serializer]:
        return self.output

    def _render(self, obj: Any, status_code: int = status.HTTP_200_OK) -> Response:
        # Re-read through the view's queryset so nested rows come prefetched and fresh.
        fresh = self.get_queryset().get(pk=obj.pk)
        return Response(self.output(fresh).data, status=status_code)

    def list(self, request: Request) -> Response:
        return self.paginated_response(self.filter_queryset(self.get_queryset()), self.output)

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(self.output(self.get_object()).data)

    def create(self, request: Request) -> Response:
        payload = self.create_input(data=request.data)
        payload.is_valid(raise_exception=True)
        obj = self.create_service(**payload.validated_data, actor=self.actor)
        return self._render(obj, status.HTTP_201_CREATED)


class CatalogViewSet(CatalogReadCreateViewSet):
    """Adds PATCH of the mutable fields and POST /{id}/archive and /unarchive.

    Subclasses name their services and the keyword the services take the object by
    (`product_update(product=...)`).
    """

    http_method_names = ["get", "post", "patch", "head", "options"]
    update_input: type[serializers.Serializer]
    update_service: Callable[..., Any]
    archive_service: Callable[..., Any]
    unarchive_service: Callable[..., Any]
    keyword: str = ""

    def partial_update(self, request: Request, pk: str) -> Response:
        obj = self.get_object()
        payload = self.update_input(data=request.data, partial=True)
        payload.is_valid(raise_exception=True)
        obj = self.update_service(**{self.keyword: obj}, **payload.validated_data, actor=self.actor)
        return self._render(obj)

    @action(detail=True, methods=["post"])
    def archive(self, request: Request, pk: str) -> Response:
        obj = self.archive_service(**{self.keyword: self.get_object()}, actor=self.actor)
        return self._render(obj)

    @action(detail=True, methods=["post"])
    def unarchive(self, request: Request, pk: str) -> Response:
        obj = self.unarchive_service(**{self.keyword: self.get_object()}, actor=self.actor)
        return self._render(obj)


def _id(noun: str) -> OpenApiParameter:
    return OpenApiParameter("id", int, OpenApiParameter.PATH, description=f"The {noun}'s id.")


def catalog_schema(
    *,
    resource: str,
    noun: str,
    output: type[serializers.Serializer],
    create_input: type[serializers.Serializer] | None = None,
    update_input: type[serializers.Serializer] | None = None,
    archive: str | None = None,
    create_description: str = "",
) -> Callable[[type], type]:
    """The OpenAPI description of a catalog viewset's actions."""
    views: dict[str, Any] = {
        "list": extend_schema(
            operation_id=f"{resource}_list",
            summary=f"List {resource.replace('_', ' ')}",
            responses=output(many=True),
        ),
        "retrieve": extend_schema(
            operation_id=f"{resource}_retrieve",
            summary=f"Retrieve a {noun}",
            parameters=[_id(noun)],
            responses=output,
        ),
    }
    if create_input is not None:
        views["create"] = extend_schema(
            operation_id=f"{resource}_create",
            summary=f"Create a {noun}",
            description=create_description,
            request=create_input,
            responses={201: output},
        )
    if update_input is not None:
        views["partial_update"] = extend_schema(
            operation_id=f"{resource}_update",
            summary=f"Update a {noun}",
            parameters=[_id(noun)],
            request=update_input,
            responses=output,
        )
    if archive is not None:
        views["archive"] = extend_schema(
            operation_id=f"{resource}_archive",
            summary=f"Archive a {noun}",
            description=archive,
            parameters=[_id(noun)],
            request=None,
            responses=output,
        )
        views["unarchive"] = extend_schema(
            operation_id=f"{resource}_unarchive",
            summary=f"Unarchive a {noun}",
            parameters=[_id(noun)],
            request=None,
            responses=output,
        )

    def decorate(viewset: type) -> type:
        return extend_schema(tags=["catalog"])(extend_schema_view(**views)(viewset))

    return decorate


# --- resources ----------------------------------------------------------------------------------


@catalog_schema(
    resource="features",
    noun="feature",
    output=shapes.FeatureSerializer,
    create_input=shapes.FeatureCreateSerializer,
    update_input=shapes.FeatureUpdateSerializer,
    archive="An archived feature can no longer be given to plans; plans keep it.",
)
class FeatureViewSet(CatalogViewSet):
    queryset = Feature.objects.all()
    filterset_class = FeatureFilter
    output = shapes.FeatureSerializer
    create_input = shapes.FeatureCreateSerializer
    update_input = shapes.FeatureUpdateSerializer
    keyword = "feature"
    create_service = staticmethod(services.feature_create)
    update_service = staticmethod(services.feature_update)
    archive_service = staticmethod(services.feature_archive)
    unarchive_service = staticmethod(services.feature_unarchive)


@catalog_schema(
    resource="products",
    noun="product",
    output=shapes.ProductSerializer,
    create_input=shapes.ProductCreateSerializer,
    update_input=shapes.ProductUpdateSerializer,
    archive="An archived product's plans are no longer offered; subscribers keep them.",
)
class ProductViewSet(CatalogViewSet):
    queryset = Product.objects.all()
    filterset_class = ProductFilter
    output = shapes.ProductSerializer
    create_input = shapes.ProductCreateSerializer
    update_input = shapes.ProductUpdateSerializer
    keyword = "product"
    create_service = staticmethod(services.product_create)
    update_service = staticmethod(services.product_update)
    archive_service = staticmethod(services.product_archive)
    unarchive_service = staticmethod(services.product_unarchive)


PLAN_QUERYSET = Plan.objects.select_related("product").prefetch_related(
    "features",
    "addons",
    Prefetch(
        "phases",
        queryset=PlanPhase.objects.order_by("sequence").prefetch_related(
            Prefetch(
                "prices",
                queryset=Price.objects.select_related("price_list").order_by(
                    "price_list__code", "currency", "-effective_from"
                ),
            )
        ),
    ),
)


@catalog_schema(
    resource="plans",
    noun="plan",
    output=shapes.PlanSerializer,
    create_input=shapes.PlanCreateSerializer,
    update_input=shapes.PlanUpdateSerializer,
    archive=(
        "Plans are never deleted: an archived plan keeps its subscribers but cannot be chosen "
        "for anything new."
    ),
    create_description=(
        "A plan with its phases (fixed from then on) and, optionally, the phases' first "
        "prices. The product, code, interval and billing day cannot change afterwards."
    ),
)
class PlanViewSet(CatalogViewSet):
    queryset = PLAN_QUERYSET
    filterset_class = PlanFilter
    output = shapes.PlanSerializer
    create_input = shapes.PlanCreateSerializer
    update_input = shapes.PlanUpdateSerializer
    keyword = "plan"
    create_service = staticmethod(services.plan_create)
    update_service = staticmethod(services.plan_update)
    archive_service = staticmethod(services.plan_archive)
    unarchive_service = staticmethod(services.plan_unarchive)

    def get_queryset(self) -> QuerySet[Plan]:
        # Filters on many-valued relations (features) may repeat a plan.
        return PLAN_QUERYSET.distinct()


@catalog_schema(
    resource="prices",
    noun="price version",
    output=shapes.PriceSerializer,
    create_input=shapes.PriceCreateSerializer,
    create_description=(
        "Add a price version for a plan phase in one currency on one price list, in effect "
        "from `effective_from`. Versions are never edited or deleted: subscribers keep the "
        "version they signed up at, new subscriptions take the version in effect."
    ),
)
class PriceViewSet(CatalogReadCreateViewSet):
    queryset = Price.objects.select_related("phase__plan", "price_list")
    filterset_class = PriceFilter
    output = shapes.PriceSerializer
    create_input = shapes.PriceCreateSerializer
    create_service = staticmethod(services.price_create)


@catalog_schema(
    resource="price_lists",
    noun="price list",
    output=shapes.PriceListSerializer,
    create_input=shapes.PriceListCreateSerializer,
    update_input=shapes.PriceListUpdateSerializer,
    archive="Buyers no longer get an archived list. The default list cannot be archived.",
)
class PriceListViewSet(CatalogViewSet):
    queryset = PriceList.objects.all()
    filterset_class = PriceListFilter
    output = shapes.PriceListSerializer
    create_input = shapes.PriceListCreateSerializer
    update_input = shapes.PriceListUpdateSerializer
    keyword = "price_list"
    create_service = staticmethod(services.price_list_create)
    update_service = staticmethod(services.price_list_update)
    archive_service = staticmethod(services.price_list_archive)
    unarchive_service = staticmethod(services.price_list_unarchive)


@catalog_schema(
    resource="bundles",
    noun="bundle",
    output=shapes.BundleSerializer,
    create_input=shapes.BundleCreateSerializer,
    update_input=shapes.BundleUpdateSerializer,
    archive="An archived bundle can no longer be sold; its subscribers keep it.",
)
class BundleViewSet(CatalogViewSet):
    queryset = Bundle.objects.prefetch_related("components__plan", "prices__price_list").order_by(
        "-id"
    )
    filterset_class = BundleFilter
    output = shapes.BundleSerializer
    create_input = shapes.BundleCreateSerializer
    update_input = shapes.BundleUpdateSerializer
    keyword = "bundle"
    create_service = staticmethod(services.bundle_create)
    update_service = staticmethod(services.bundle_update)
    archive_service = staticmethod(services.bundle_archive)
    unarchive_service = staticmethod(services.bundle_unarchive)

    def get_queryset(self) -> QuerySet[Bundle]:
        return super().get_queryset().distinct()

    @extend_schema(
        operation_id="bundles_prices_create",
        summary="Add a bundle price version",
        description="A new price version of a fixed-price bundle (never an edit).",
        parameters=[_id("bundle")],
        request=shapes.BundlePriceCreateSerializer,
        responses={201: shapes.BundleSerializer},
    )
    @action(detail=True, methods=["post"])
    def prices(self, request: Request, pk: str) -> Response:
        bundle = self.get_object()
        payload = shapes.BundlePriceCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        services.bundle_price_create(bundle=bundle, **payload.validated_data, actor=self.actor)
        return self._render(bundle, status.HTTP_201_CREATED)


@catalog_schema(
    resource="coupons",
    noun="coupon",
    output=shapes.CouponSerializer,
    create_input=shapes.CouponCreateSerializer,
    update_input=shapes.CouponUpdateSerializer,
    archive="No new redemptions; discounts already granted run their course.",
    create_description=(
        "A percent or fixed (per currency) discount, applied once, for `duration_cycles` "
        "billing cycles or forever. The discount terms cannot change afterwards."
    ),
)
class CouponViewSet(CatalogViewSet):
    queryset = Coupon.objects.prefetch_related("amounts", "plans")
    filterset_class = CouponFilter
    output = shapes.CouponSerializer
    create_input = shapes.CouponCreateSerializer
    update_input = shapes.CouponUpdateSerializer
    keyword = "coupon"
    create_service = staticmethod(services.coupon_create)
    update_service = staticmethod(services.coupon_update)
    archive_service = staticmethod(services.coupon_archive)
    unarchive_service = staticmethod(services.coupon_unarchive)

    def get_queryset(self) -> QuerySet[Coupon]:
        return super().get_queryset().distinct()


@catalog_schema(
    resource="promotion_codes",
    noun="promotion code",
    output=shapes.PromotionCodeSerializer,
    create_input=shapes.PromotionCodeCreateSerializer,
    update_input=shapes.PromotionCodeUpdateSerializer,
    archive="Deactivates the code: customers can no longer redeem it.",
)
class PromotionCodeViewSet(CatalogViewSet):
    queryset = PromotionCode.objects.select_related("coupon")
    filterset_class = PromotionCodeFilter
    output = shapes.PromotionCodeSerializer
    create_input = shapes.PromotionCodeCreateSerializer
    update_input = shapes.PromotionCodeUpdateSerializer
    keyword = "promotion_code"
    create_service = staticmethod(services.promotion_code_create)
    update_service = staticmethod(services.promotion_code_update)
    archive_service = staticmethod(services.promotion_code_archive)
    unarchive_service = staticmethod(services.promotion_code_unarchive)


@catalog_schema(
    resource="tax_rates",
    noun="tax rate",
    output=shapes.TaxRateSerializer,
    create_input=shapes.TaxRateCreateSerializer,
    update_input=shapes.TaxRateUpdateSerializer,
    archive=(
        "Deactivates the rate. Unarchiving is refused while another rate is active for the "
        "same place."
    ),
    create_description=(
        "A rate for a country or one of its subdivisions (which wins over the country-wide "
        "rate). One active rate per place; the percentage and place cannot change afterwards."
    ),
)
class TaxRateViewSet(CatalogViewSet):
    queryset = TaxRate.objects.all()
    filterset_class = TaxRateFilter
    output = shapes.TaxRateSerializer
    create_input = shapes.TaxRateCreateSerializer
    update_input = shapes.TaxRateUpdateSerializer
    keyword = "tax_rate"
    create_service = staticmethod(services.tax_rate_create)
    update_service = staticmethod(services.tax_rate_update)
    archive_service = staticmethod(services.tax_rate_archive)
    unarchive_service = staticmethod(services.tax_rate_unarchive)


@catalog_schema(
    resource="meters",
    noun="meter",
    output=shapes.MeterSerializer,
    create_input=shapes.MeterCreateSerializer,
    update_input=shapes.MeterUpdateSerializer,
    archive="An archived meter can no longer be added to plans.",
)
class MeterViewSet(CatalogViewSet):
    queryset = Meter.objects.all()
    filterset_class = MeterFilter
    output = shapes.MeterSerializer
    create_input = shapes.MeterCreateSerializer
    update_input = shapes.MeterUpdateSerializer
    keyword = "meter"
    create_service = staticmethod(services.meter_create)
    update_service = staticmethod(services.meter_update)
    archive_service = staticmethod(services.meter_archive)
    unarchive_service = staticmethod(services.meter_unarchive)


METER_PRICES = MeterPrice.objects.select_related("price_list").prefetch_related("tiers")


@catalog_schema(
    resource="plan_meters",
    noun="metered charge",
    output=shapes.PlanMeterSerializer,
    create_input=shapes.PlanMeterCreateSerializer,
    create_description=(
        "Charge a plan's subscribers for a meter's usage, in arrears at period end. Its "
        "prices are added as versions through `POST /meter_prices`."
    ),
)
class PlanMeterViewSet(CatalogReadCreateViewSet):
    queryset = PlanMeter.objects.select_related("plan", "meter").prefetch_related(
        Prefetch("prices", queryset=METER_PRICES.order_by("currency", "-effective_from"))
    )
    filterset_class = PlanMeterFilter
    output = shapes.PlanMeterSerializer
    create_input = shapes.PlanMeterCreateSerializer
    create_service = staticmethod(services.plan_meter_create)


@catalog_schema(
    resource="meter_prices",
    noun="metered price version",
    output=shapes.MeterPriceSerializer,
    create_input=shapes.MeterPriceCreateSerializer,
    create_description=(
        "A new version of a metered charge's price in one currency, with its tiers. Unit "
        "amounts may carry up to 4 decimals. Versions are never edited or deleted."
    ),
)
class MeterPriceViewSet(CatalogReadCreateViewSet):
    queryset = METER_PRICES
    filterset_class = MeterPriceFilter
    output = shapes.MeterPriceSerializer
    create_input = shapes.MeterPriceCreateSerializer
    create_service = staticmethod(services.meter_price_create)


def register(router: DefaultRouter) -> None:
    """Register this module's viewsets on the v1 router."""
    router.register("products", ProductViewSet, basename="products")
    router.register("plans", PlanViewSet, basename="plans")
    router.register("prices", PriceViewSet, basename="prices")
    router.register("price_lists", PriceListViewSet, basename="price-lists")
    router.register("features", FeatureViewSet, basename="features")
    router.register("bundles", BundleViewSet, basename="bundles")
    router.register("coupons", CouponViewSet, basename="coupons")
    router.register("promotion_codes", PromotionCodeViewSet, basename="promotion-codes")
    router.register("tax_rates", TaxRateViewSet, basename="tax-rates")
    router.register("meters", MeterViewSet, basename="meters")
    router.register("plan_meters", PlanMeterViewSet, basename="plan-meters")
    router.register("meter_prices", MeterPriceViewSet, basename="meter-prices")
