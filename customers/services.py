"""Writes of partners, customers and the interactions log.

Every function validates its whole input before writing anything, writes in one transaction and
records an audit entry with the state before and after.

Partner scoping: `partner_scope` is the partner whose API key performs the write. It forces the
customer's partner and restricts what may be referenced, so a partner can only ever create and
change its own customers.
"""

from __future__ import annotations

import json
import re
import secrets
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, models, transaction

from catalog.models import PriceList
from core import clock
from core.actors import Actor
from core.errors import ConflictError, NotFoundError, PermissionDeniedError, ValidationError
from core.money import normalize_currency
from core.sentinels import UNSET, Unset
from core.services import audit_record, audit_snapshot
from core.webhooks.events import EventType
from core.webhooks.services import event_emit
from customers.models import Customer, Interaction, Partner
from customers.webhook_payloads import customer_payload

METADATA_MAX_KEYS = 50
METADATA_MAX_KEY_LENGTH = 40
SEGMENTS_MAX = 20
NOTE_MAX_LENGTH = 10_000
EMAIL_MAX_LENGTH = 254

# ISO 3166-1 reserves AA, QM-QZ, XA-XZ and ZZ for user assignment: they name no country.
# XK stays allowed: it is the code in common use for Kosovo (EU, SWIFT, card networks).
_COUNTRY_CODE = re.compile(r"^(?!AA|Q[M-Z]|X[A-JL-Z]|ZZ)[A-Z]{2}$")
# ISO 3166-2: the part after "CC-" is one to three letters or digits (US-CA, FR-75, GB-ENG).
_REGION_SUFFIX = re.compile(r"^[A-Z0-9]{1,3}$")
_SLUG = re.compile(r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


# --- partners ---------------------------------------------------------------------------------


def partner_create(
    *,
    code: str,
    name: str,
    actor: Actor,
    contact_email: str = "",
    price_list: PriceList | None = None,
) -> Partner:
    values = partner_clean_input(
        {"code": code, "name": name, "contact_email": contact_email, "price_list": price_list},
        current=None,
    )
    with transaction.atomic():
        partner = Partner(**values, active=True, created_at=clock.now())
        _save_unique(
            partner,
            duplicates=Partner.objects.filter(code=values["code"]),
            conflict=ConflictError(
                f"A partner with code {values['code']!r} already exists.",
                code="partner_exists",
                param="code",
            ),
        )
        audit_record(
            actor=actor, action="partner.create", instance=partner, after=audit_snapshot(partner)
        )
    return partner


def partner_update(
    *,
    partner: Partner,
    actor: Actor,
    name: str | Unset = UNSET,
    contact_email: str | Unset = UNSET,
    price_list: PriceList | None | Unset = UNSET,
) -> Partner:
    """Change a partner's details. Its code is its public identity and never changes."""
    given = {
        field: value
        for field, value in {
            "name": name,
            "contact_email": contact_email,
            "price_list": price_list,
        }.items()
        if value is not UNSET
    }
    with transaction.atomic():
        locked = Partner.objects.select_for_update().get(pk=partner.pk)
        changes = partner_clean_input(given, current=locked)
        return _apply_changes(locked, changes, actor=actor, action="partner.update")


def partner_clean_input(values: dict[str, Any], *, current: Partner | None) -> dict[str, Any]:
    """Validate and normalize partner fields (the code only on creation); write nothing."""
    clean: dict[str, Any] = {}
    if "code" in values:
        if current is not None:
            raise ValidationError(
                "A partner's code never changes.", code="partner_code_immutable", param="code"
            )
        clean["code"] = _clean_partner_code(values["code"])
    if "name" in values:
        clean["name"] = _clean_required_text(values["name"], param="name", max_length=200)
    if "contact_email" in values:
        clean["contact_email"] = _clean_email(
            values["contact_email"], param="contact_email", required=False
        )
    if "price_list" in values:
        price_list = values["price_list"]
        if current is None or price_list is None or price_list.pk != current.price_list_id:
            _check_price_list(price_list)
        clean["price_list"] = price_list
    return clean


def partner_deactivate(*, partner: Partner, actor: Actor) -> Partner:
    """Stop a partner: its API keys stop authenticating and no customer can be added to it."""
    with transaction.atomic():
        locked = Partner.objects.select_for_update().get(pk=partner.pk)
        return _apply_changes(locked, {"active": False}, actor=actor, action="partner.deactivate")


def partner_reactivate(*, partner: Partner, actor: Actor) -> Partner:
    with transaction.atomic():
        locked = Partner.objects.select_for_update().get(pk=partner.pk)
        return _apply_changes(locked, {"active": True}, actor=actor, action="partner.reactivate")


# --- customers --------------------------------------------------------------------------------


def customer_create(
    *,
    email: str,
    name: str,
    actor: Actor,
    external_id: str | None = None,
    currency: str | None = None,
    country: str | None = None,
    region: str | None = None,
    postal_code: str | None = None,
    tax_id: str | None = None,
    segments: list[str] | None = None,
    acquisition_channel: str | None = None,
    partner: Partner | None | Unset = UNSET,
    price_list: PriceList | None = None,
    billing_day: int | None = None,
    autocharge: bool = True,
    metadata: dict[str, Any] | None = None,
    partner_scope: Partner | None = None,
) -> Customer:
    """Open a customer account.

    Without an `external_id` one is generated (`cus_...`). The acquisition channel defaults to
    `partner` for a partner's customer, else `organic`. With `partner_scope` (a partner's API
    key) the customer belongs to that partner: `partner` may be omitted or name that partner,
    anything else (another partner, or explicitly None) is refused.
    """
    if partner_scope is not None:
        # Omitted means "mine"; naming another partner, or explicitly none, is refused.
        if partner is not UNSET and (partner is None or partner.pk != partner_scope.pk):
            raise PermissionDeniedError(
                "A partner API key can only create customers for its own partner.",
                code="partner_forbidden",
                param="partner",
            )
        partner = partner_scope
    elif partner is UNSET:
        partner = None
    values = customer_clean_input(
        {
            "external_id": external_id
            if external_id is not None
            else f"cus_{secrets.token_hex(12)}",
            "email": email,
            "name": name,
            "currency": currency,
            "country": country,
            "region": region,
            "postal_code": postal_code,
            "tax_id": tax_id,
            "segments": segments if segments is not None else [],
            "acquisition_channel": acquisition_channel
            or (Customer.Channel.PARTNER if partner is not None else Customer.Channel.ORGANIC),
            "partner": partner,
            "price_list": price_list,
            "billing_day": billing_day,
            "autocharge": autocharge,
            "metadata": metadata if metadata is not None else {},
        },
        current=None,
        partner_scope=partner_scope,
    )
    now = clock.now()
    with transaction.atomic():
        customer = Customer(**values, created_at=now, updated_at=now)
        _save_unique(
            customer,
            duplicates=Customer.objects.filter(external_id=values["external_id"]),
            conflict=_customer_exists(values["external_id"]),
        )
        audit_record(
            actor=actor,
            action="customer.create",
            instance=customer,
            after=audit_snapshot(customer),
        )
        event_emit(
            type=EventType.CUSTOMER_CREATED,
            payload=customer_payload(customer),
            customer_id=customer.pk,
        )
    return customer


def customer_update(
    *,
    customer: Customer,
    actor: Actor,
    partner_scope: Partner | None = None,
    external_id: str | Unset = UNSET,
    email: str | Unset = UNSET,
    name: str | Unset = UNSET,
    currency: str | None | Unset = UNSET,
    country: str | None | Unset = UNSET,
    region: str | None | Unset = UNSET,
    postal_code: str | None | Unset = UNSET,
    tax_id: str | None | Unset = UNSET,
    segments: list[str] | Unset = UNSET,
    acquisition_channel: str | Unset = UNSET,
    partner: Partner | None | Unset = UNSET,
    price_list: PriceList | None | Unset = UNSET,
    billing_day: int | None | Unset = UNSET,
    autocharge: bool | Unset = UNSET,
    metadata: dict[str, Any] | Unset = UNSET,
) -> Customer:
    """Change what is given (None or "" clears an optional value); nothing else moves.

    The billing currency can be set once while empty and never changed afterwards. A new
    country without a region clears the region, which belonged to the old country.
    """
    given = {
        field: value
        for field, value in {
            "external_id": external_id,
            "email": email,
            "name": name,
            "currency": currency,
            "country": country,
            "region": region,
            "postal_code": postal_code,
            "tax_id": tax_id,
            "segments": segments,
            "acquisition_channel": acquisition_channel,
            "partner": partner,
            "price_list": price_list,
            "billing_day": billing_day,
            "autocharge": autocharge,
            "metadata": metadata,
        }.items()
        if value is not UNSET
    }
    with transaction.atomic():
        # Re-read under a lock: the currency lock and the partner check must see the latest row.
        locked = Customer.objects.select_for_update(of=("self",)).filter(pk=customer.pk).first()
        if locked is None or (partner_scope is not None and locked.partner_id != partner_scope.pk):
            raise NotFoundError(
                f"No such customer: {customer.pk}.", code="customer_not_found", param="id"
            )
        values = customer_clean_input(given, current=locked, partner_scope=partner_scope)
        changed = {k: v for k, v in values.items() if _field_value(locked, k) != _pk_or(v)}
        if not changed:
            return locked
        before = audit_snapshot(locked)
        for field, value in changed.items():
            setattr(locked, field, value)
        locked.updated_at = clock.now()
        if "external_id" in changed:
            _save_unique(
                locked,
                duplicates=Customer.objects.filter(external_id=changed["external_id"]),
                conflict=_customer_exists(changed["external_id"]),
            )
        else:
            locked.save()
        audit_record(
            actor=actor,
            action="customer.update",
            instance=locked,
            before=before,
            after=audit_snapshot(locked),
        )
        event_emit(
            type=EventType.CUSTOMER_UPDATED,
            payload=customer_payload(locked),
            customer_id=locked.pk,
        )
    return locked


def customer_clean_input(
    values: dict[str, Any],
    *,
    current: Customer | None,
    partner_scope: Partner | None = None,
) -> dict[str, Any]:
    """Validate and normalize customer fields; raise the first problem, write nothing.

    `values` holds the fields to set (all of them on creation, the changes on update);
    `current` is the customer being changed. The admin's forms run this too, so the rules hold
    whichever door a change comes through.
    """
    clean: dict[str, Any] = {}
    if "external_id" in values:
        clean["external_id"] = _clean_external_id(values["external_id"])
    if "email" in values:
        clean["email"] = _clean_email(values["email"], param="email", required=True)
    if "name" in values:
        clean["name"] = _clean_required_text(values["name"], param="name", max_length=200)
    if "currency" in values:
        clean["currency"] = _clean_currency(values["currency"], current=current)
    if "country" in values:
        clean["country"] = _clean_country(values["country"])
    if "region" in values or ("country" in clean and current is not None):
        country = clean.get("country", current.country if current is not None else "")
        if "region" in values:
            clean["region"] = _clean_region(values["region"], country=country)
        elif current is not None and country != current.country:
            clean["region"] = ""
    for field, max_length in (("postal_code", 20), ("tax_id", 50)):
        if field in values:
            clean[field] = _clean_optional_text(values[field], param=field, max_length=max_length)
    if "segments" in values:
        clean["segments"] = _clean_segments(values["segments"])
    if "acquisition_channel" in values:
        clean["acquisition_channel"] = _clean_channel(values["acquisition_channel"])
    if "partner" in values:
        clean["partner"] = _clean_partner(
            values["partner"], current=current, partner_scope=partner_scope
        )
    if "price_list" in values:
        clean["price_list"] = _clean_price_list(
            values["price_list"],
            partner_scope=partner_scope,
            current=current.price_list if current is not None else None,
        )
    if "billing_day" in values:
        clean["billing_day"] = _clean_billing_day(values["billing_day"])
    if "autocharge" in values:
        if not isinstance(values["autocharge"], bool):
            raise ValidationError(
                "autocharge is true or false.", code="invalid_autocharge", param="autocharge"
            )
        clean["autocharge"] = values["autocharge"]
    if "metadata" in values:
        clean["metadata"] = _clean_metadata(values["metadata"])
    return clean


# --- interactions -----------------------------------------------------------------------------


def interaction_record(
    *,
    customer: Customer,
    channel: str,
    note: str,
    actor: Actor,
    author: User | None = None,
    occurred_at: datetime | None = None,
    partner_scope: Partner | None = None,
) -> Interaction:
    """Log one contact with the customer. `author` is the staff user when there is one;
    `author_label` always names who recorded it (a user or an API key)."""
    if partner_scope is not None and customer.partner_id != partner_scope.pk:
        raise NotFoundError(
            f"No such customer: {customer.pk}.", code="customer_not_found", param="id"
        )
    values = interaction_clean_input({"channel": channel, "note": note, "occurred_at": occurred_at})
    label = actor.label or (author.get_username() if author is not None else "")
    with transaction.atomic():
        interaction = Interaction.objects.create(
            customer=customer,
            author=author,
            author_label=label[:200],
            **values,
        )
        audit_record(
            actor=actor,
            action="interaction.create",
            instance=interaction,
            after=audit_snapshot(interaction),
        )
    return interaction


def interaction_clean_input(values: dict[str, Any]) -> dict[str, Any]:
    """Validate channel, note and occurred_at (now when None, never in the future)."""
    channel, note, occurred_at = values["channel"], values["note"], values.get("occurred_at")
    if channel not in Interaction.Channel.values:
        raise ValidationError(
            f"channel must be one of {', '.join(Interaction.Channel.values)}.",
            code="invalid_channel",
            param="channel",
        )
    if not isinstance(note, str) or not note.strip():
        raise ValidationError("An interaction needs a note.", code="note_required", param="note")
    if len(note) > NOTE_MAX_LENGTH:
        raise ValidationError(
            f"A note is {NOTE_MAX_LENGTH} characters at most.", code="note_too_long", param="note"
        )
    now = clock.now()
    if occurred_at is not None:
        if occurred_at.tzinfo is None:
            raise ValidationError(
                "occurred_at must carry a timezone.",
                code="invalid_occurred_at",
                param="occurred_at",
            )
        if occurred_at > now:
            raise ValidationError(
                "An interaction cannot be logged in the future.",
                code="occurred_in_future",
                param="occurred_at",
            )
    return {"channel": channel, "note": note.strip(), "occurred_at": occurred_at or now}


# --- helpers ----------------------------------------------------------------------------------


def _apply_changes(
    instance: Partner, changes: dict[str, Any], *, actor: Actor, action: str
) -> Partner:
    changed = {k: v for k, v in changes.items() if _field_value(instance, k) != _pk_or(v)}
    if not changed:
        return instance
    before = audit_snapshot(instance)
    for field, value in changed.items():
        setattr(instance, field, value)
    instance.save(update_fields=list(changed))
    audit_record(
        actor=actor, action=action, instance=instance, before=before, after=audit_snapshot(instance)
    )
    return instance


def _field_value(instance: Any, field: str) -> Any:
    """The stored value, with foreign keys compared by id (no extra query)."""
    attname = instance._meta.get_field(field).attname
    return getattr(instance, attname)


def _pk_or(value: Any) -> Any:
    return value.pk if hasattr(value, "_meta") else value


def _save_unique(
    instance: models.Model, *, duplicates: models.QuerySet[Any], conflict: ConflictError
) -> None:
    # The unique index decides, not a check beforehand: of two concurrent writes with one
    # external id (or partner code), exactly one passes and the other gets the conflict.
    try:
        with transaction.atomic():
            instance.save()
    except IntegrityError:
        if duplicates.exclude(pk=instance.pk).exists():
            raise conflict from None
        raise


def _customer_exists(external_id: str) -> ConflictError:
    return ConflictError(
        f"A customer with external_id {external_id!r} already exists.",
        code="customer_exists",
        param="external_id",
    )


def _clean_external_id(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(
            "external_id cannot be empty.", code="invalid_external_id", param="external_id"
        )
    text = value.strip()
    if len(text) > 100 or _CONTROL_CHARS.search(text):
        raise ValidationError(
            "external_id is at most 100 printable characters.",
            code="invalid_external_id",
            param="external_id",
        )
    return text


def _clean_partner_code(value: object) -> str:
    code = value.strip().lower() if isinstance(value, str) else ""
    if not _SLUG.match(code) or len(code) > 64:
        raise ValidationError(
            f"{value!r} is not a partner code (a slug: letters, digits, - and _; 64 at most).",
            code="invalid_partner_code",
            param="code",
        )
    return code


def _clean_email(value: object, *, param: str, required: bool) -> str:
    text = value.strip() if isinstance(value, str) else value
    if not text and not required:
        return ""
    if not isinstance(text, str) or len(text) > EMAIL_MAX_LENGTH:
        raise ValidationError(
            f"{value!r} is not a valid email address.", code="invalid_email", param=param
        )
    try:
        validate_email(text)
    except DjangoValidationError:
        raise ValidationError(
            f"{value!r} is not a valid email address.", code="invalid_email", param=param
        ) from None
    local, _, domain = text.rpartition("@")
    # The domain is case-insensitive; the local part belongs to the mail server, kept as given.
    return f"{local}@{domain.lower()}"


def _clean_required_text(value: object, *, param: str, max_length: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{param} is required.", code=f"invalid_{param}", param=param)
    text = value.strip()
    if len(text) > max_length or _CONTROL_CHARS.search(text):
        raise ValidationError(
            f"{param} is at most {max_length} printable characters.",
            code=f"invalid_{param}",
            param=param,
        )
    return text


def _clean_optional_text(value: object, *, param: str, max_length: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError(f"{param} must be a string.", code=f"invalid_{param}", param=param)
    text = value.strip()
    if len(text) > max_length or _CONTROL_CHARS.search(text):
        raise ValidationError(
            f"{param} is at most {max_length} printable characters.",
            code=f"invalid_{param}",
            param=param,
        )
    return text


def _clean_currency(value: object, *, current: Customer | None) -> str:
    if value is None or value == "":
        code = ""
    elif isinstance(value, str):
        code = normalize_currency(value)
    else:
        raise ValidationError(
            "currency is an ISO 4217 code such as USD.", code="invalid_currency", param="currency"
        )
    # One billing currency per customer: the ledger keeps balances per currency and never
    # converts, so once set it stays (subscriptions will fix it at the first one).
    if current is not None and current.currency and code != current.currency:
        raise ConflictError(
            f"The billing currency is already {current.currency} and cannot change.",
            code="currency_locked",
            param="currency",
        )
    return code


def _clean_country(value: object) -> str:
    if value is None or value == "":
        return ""
    code = value.strip().upper() if isinstance(value, str) else ""
    if not _COUNTRY_CODE.match(code):
        raise ValidationError(
            f"{value!r} is not an ISO 3166-1 alpha-2 country code (such as FR).",
            code="invalid_country",
            param="country",
        )
    return code


def _clean_region(value: object, *, country: str) -> str:
    if value is None or value == "":
        return ""
    text = value.strip().upper() if isinstance(value, str) else ""
    if not country:
        raise ValidationError(
            "A region needs a country.", code="region_requires_country", param="region"
        )
    prefix, dash, suffix = text.rpartition("-")
    if dash and prefix != country:
        raise ValidationError(
            f"{value!r} is not a subdivision of {country}.", code="invalid_region", param="region"
        )
    if not _REGION_SUFFIX.match(suffix):
        raise ValidationError(
            f"{value!r} is not an ISO 3166-2 subdivision code (such as CA for US-CA).",
            code="invalid_region",
            param="region",
        )
    return suffix


def _clean_segments(value: object) -> list[str]:
    if not isinstance(value, list | tuple):
        raise ValidationError(
            "segments is a list of slugs.", code="invalid_segments", param="segments"
        )
    segments: list[str] = []
    for item in value:
        slug = item.strip().lower() if isinstance(item, str) else ""
        if not _SLUG.match(slug) or len(slug) > 64:
            raise ValidationError(
                f"{item!r} is not a segment slug (letters, digits, - and _; 64 at most).",
                code="invalid_segments",
                param="segments",
            )
        if slug not in segments:
            segments.append(slug)
    if len(segments) > SEGMENTS_MAX:
        raise ValidationError(
            f"A customer is in {SEGMENTS_MAX} segments at most.",
            code="invalid_segments",
            param="segments",
        )
    return segments


def _clean_channel(value: object) -> str:
    if value not in Customer.Channel.values:
        raise ValidationError(
            f"acquisition_channel must be one of {', '.join(Customer.Channel.values)}.",
            code="invalid_acquisition_channel",
            param="acquisition_channel",
        )
    return str(value)


def _clean_partner(
    value: Partner | None, *, current: Customer | None, partner_scope: Partner | None
) -> Partner | None:
    if partner_scope is not None and (value is None or value.pk != partner_scope.pk):
        raise PermissionDeniedError(
            "A partner API key cannot move a customer to another partner or to none.",
            code="partner_forbidden",
            param="partner",
        )
    unchanged = value is not None and current is not None and current.partner_id == value.pk
    if value is not None and not value.active and not unchanged:
        raise ValidationError(
            f"Partner {value.code} is inactive.", code="partner_inactive", param="partner"
        )
    return value


def _check_price_list(price_list: PriceList | None) -> None:
    if price_list is not None and price_list.archived_at is not None:
        raise ValidationError(
            f"Price list {price_list.code} is archived.",
            code="price_list_archived",
            param="price_list",
        )


def _clean_price_list(
    value: PriceList | None, *, partner_scope: Partner | None, current: PriceList | None
) -> PriceList | None:
    if value is None or (current is not None and value.pk == current.pk):
        return value
    # A partner may not pick prices for its customers: only its own list (or none, which
    # resolves to its list anyway), or any list could be used to undercut the agreed prices.
    if partner_scope is not None and value.pk != partner_scope.price_list_id:
        raise PermissionDeniedError(
            "A partner API key can only assign its partner's own price list.",
            code="price_list_forbidden",
            param="price_list",
        )
    _check_price_list(value)
    return value


def _clean_billing_day(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 31:
        raise ValidationError(
            "billing_day is a day of the month, 1 to 31 (or empty).",
            code="invalid_billing_day",
            param="billing_day",
        )
    return value


def _clean_metadata(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationError(
            "metadata is a JSON object.", code="invalid_metadata", param="metadata"
        )
    if len(value) > METADATA_MAX_KEYS:
        raise ValidationError(
            f"metadata holds {METADATA_MAX_KEYS} keys at most.",
            code="invalid_metadata",
            param="metadata",
        )
    for key in value:
        if not isinstance(key, str) or not key or len(key) > METADATA_MAX_KEY_LENGTH:
            raise ValidationError(
                f"metadata keys are strings of 1 to {METADATA_MAX_KEY_LENGTH} characters.",
                code="invalid_metadata",
                param="metadata",
            )
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise ValidationError(
            "metadata values must be JSON (strings, numbers, booleans, lists, objects).",
            code="invalid_metadata",
            param="metadata",
        ) from None
    return dict(value)


# --- portal logins ----------------------------------------------------------------------------


def customer_link_user(*, customer: Customer, user: User, actor: Actor) -> Customer:
    """Give a customer a portal login (one user per customer, one customer per user)."""
    with transaction.atomic():
        customer = Customer.objects.select_for_update().get(pk=customer.pk)
        other = Customer.objects.filter(user=user).exclude(pk=customer.pk).first()
        if other is not None:
            raise ConflictError(
                "This login already belongs to another customer.", code="user_taken", param="user"
            )
        if customer.user_id == user.pk:
            return customer
        before = audit_snapshot(customer)
        customer.user = user
        customer.updated_at = clock.now()
        customer.save(update_fields=["user", "updated_at"])
        audit_record(
            actor=actor,
            action="customer.link_user",
            instance=customer,
            before=before,
            after=audit_snapshot(customer),
        )
    return customer
