from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from api.models import ApiKey, IdempotencyRecord
from core import clock
from core.actors import Actor
from core.errors import ValidationError
from core.services import audit_record, audit_snapshot
from customers.models import Partner


def api_key_hash(plaintext: str) -> str:
    # Keys carry 190+ bits of randomness, so a fast hash is enough (no password stretching).
    return hashlib.sha256(plaintext.encode()).hexdigest()


def api_key_create(
    *,
    name: str,
    scopes: list[str],
    actor: Actor,
    partner: Partner | None = None,
    rate_limit_per_minute: int | None = None,
    plaintext: str | None = None,
    created_by: User | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; return it with its plaintext, which is never stored and shown only now.

    `plaintext` is for the demo data only, so `make run` can print a stable demo key.
    """
    valid = {choice.value for choice in ApiKey.Scope}
    if not scopes or not set(scopes) <= valid:
        raise ValidationError(
            f"Scopes must be a non-empty subset of {sorted(valid)}.",
            code="invalid_scopes",
            param="scopes",
        )
    if not name.strip():
        raise ValidationError("A key needs a name.", param="name")
    mode = "test" if settings.TEST_MODE else "live"
    plaintext = plaintext or f"sk_{mode}_{secrets.token_urlsafe(32)}"
    with transaction.atomic():
        key = ApiKey.objects.create(
            name=name.strip(),
            prefix=plaintext[:16],
            key_hash=api_key_hash(plaintext),
            scopes=sorted(set(scopes)),
            partner=partner,
            rate_limit_per_minute=rate_limit_per_minute,
            created_by=created_by,
            created_at=clock.now(),
        )
        audit_record(actor=actor, action="api_key.create", instance=key, after=audit_snapshot(key))
    return key, plaintext


def api_key_revoke(*, key: ApiKey, actor: Actor) -> ApiKey:
    with transaction.atomic():
        if key.revoked_at is None:
            key.revoked_at = clock.now()
            key.save(update_fields=["revoked_at"])
            audit_record(actor=actor, action="api_key.revoke", instance=key)
    return key


def idempotency_records_purge(*, older_than_hours: int | None = None) -> int:
    """Forget the Idempotency-Key records older than API_IDEMPOTENCY_TTL_HOURS (wall clock, as
    they are written): replayed responses are a cache with an expiry, not business records, so
    no audit entry. Returns how many were deleted."""
    hours = settings.API_IDEMPOTENCY_TTL_HOURS if older_than_hours is None else older_than_hours
    expired_before = timezone.now() - timedelta(hours=hours)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=expired_before).delete()
    return deleted
