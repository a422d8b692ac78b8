"""The customer as webhook events carry it: the API's representation, as a plain dict.

Built here rather than with the API's serializer because services must not import the doors
(they sit on top). tests/webhooks/test_emission.py holds it equal to the API's representation.
The date and time helpers are the API's formats, shared by billing's and subscriptions' payloads.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from django.utils import timezone

from customers.models import Customer


def iso_date(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def iso_datetime(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a `Z`, as the API (DRF's `iso-8601` format) renders it."""
    if value is None:
        return None
    text = timezone.localtime(value, timezone.get_default_timezone()).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def customer_payload(customer: Customer) -> dict[str, Any]:
    return {
        "id": customer.pk,
        "external_id": customer.external_id,
        "email": customer.email,
        "name": customer.name,
        "currency": customer.currency or None,
        "country": customer.country or None,
        "region": customer.region or None,
        "postal_code": customer.postal_code or None,
        "tax_id": customer.tax_id or None,
        "segments": list(customer.segments),
        "acquisition_channel": customer.acquisition_channel,
        "partner": customer.partner.code if customer.partner_id is not None else None,  # type: ignore[union-attr]
        "price_list": customer.price_list.code if customer.price_list_id is not None else None,  # type: ignore[union-attr]
        "billing_day": customer.billing_day,
        "autocharge": customer.autocharge,
        "metadata": customer.metadata,
        "created_at": iso_datetime(customer.created_at),
        "updated_at": iso_datetime(customer.updated_at),
    }
