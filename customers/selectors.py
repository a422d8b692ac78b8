"""Reads of customers, partners and the interactions log, for the doors and the apps above.

Partner scoping lives here once: every read a partner API key can trigger goes through
`customers_visible_to`, so a partner never sees (nor learns of) another partner's customers.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import Case, IntegerField, Q, QuerySet, Value, When

from catalog.models import PriceList
from core.errors import NotFoundError
from customers.models import Customer, Interaction, Partner


def customers_visible_to(*, partner: Partner | None) -> QuerySet[Customer]:
    """All customers for staff and non-partner keys (`partner=None`), else the partner's own."""
    customers = Customer.objects.select_related("partner", "price_list")
    if partner is not None:
        customers = customers.filter(partner=partner)
    return customers


def customer_get(*, pk: int | str, partner: Partner | None) -> Customer:
    """One customer, or `customer_not_found` (also for another partner's: never a 403)."""
    try:
        return customers_visible_to(partner=partner).get(pk=int(pk))
    except (Customer.DoesNotExist, ValueError, TypeError):
        raise NotFoundError(
            f"No such customer: {pk}.", code="customer_not_found", param="id"
        ) from None


def customer_list(
    *,
    partner: Partner | None,
    email: str | None = None,
    external_id: str | None = None,
    country: str | None = None,
    currency: str | None = None,
    partner_code: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> QuerySet[Customer]:
    """Customers visible to `partner`, narrowed by the filters (they can only narrow).

    `created_after` is inclusive and `created_before` exclusive, so adjacent ranges never
    overlap nor leave a gap.
    """
    customers = customers_visible_to(partner=partner)
    if email is not None:
        customers = customers.filter(email__iexact=email.strip())
    if external_id is not None:
        customers = customers.filter(external_id=external_id)
    if country is not None:
        customers = customers.filter(country=country.strip().upper())
    if currency is not None:
        customers = customers.filter(currency=currency.strip().upper())
    if partner_code is not None:
        customers = customers.filter(partner__code=partner_code)
    if created_after is not None:
        customers = customers.filter(created_at__gte=created_after)
    if created_before is not None:
        customers = customers.filter(created_at__lt=created_before)
    return customers


def customer_search(
    *, query: str, partner: Partner | None = None, limit: int = 20
) -> list[Customer]:
    """Find a customer fast by id, email, name or external id; the closest matches first.

    Exact hits (id, external id, email) rank above prefix hits, which rank above the rest.
    """
    text = query.strip()
    if not text:
        return []
    exact = Q(external_id=text) | Q(email__iexact=text)
    if text.isdigit():
        exact |= Q(pk=int(text))
    prefix = (
        Q(email__istartswith=text) | Q(name__istartswith=text) | Q(external_id__istartswith=text)
    )
    contains = Q(email__icontains=text) | Q(name__icontains=text) | Q(external_id__icontains=text)
    ranked = (
        customers_visible_to(partner=partner)
        .filter(exact | contains)
        .annotate(
            rank=Case(
                When(exact, then=Value(0)),
                When(prefix, then=Value(1)),
                default=Value(2),
                output_field=IntegerField(),
            )
        )
        .order_by("rank", "name", "id")
    )
    return list(ranked[:limit])


def interactions_for(*, customer: Customer) -> QuerySet[Interaction]:
    """The customer's contact history, newest first."""
    return Interaction.objects.filter(customer=customer).select_related("author")


def partner_get(*, code: str) -> Partner:
    try:
        return Partner.objects.get(code=code)
    except Partner.DoesNotExist:
        raise NotFoundError(
            f"No such partner: {code!r}.", code="partner_not_found", param="partner"
        ) from None


def price_list_get(*, code: str) -> PriceList:
    """A price list by code, archived or not: the services refuse archived ones by name."""
    price_list = PriceList.objects.filter(code=code).first()
    if price_list is None:
        raise NotFoundError(
            f"No such price list: {code!r}.", code="price_list_not_found", param="price_list"
        )
    return price_list
