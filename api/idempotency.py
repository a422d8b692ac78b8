"""Idempotency-Key handling for POST requests (Stripe's contract).

Same key and same request (method, path and body bytes): the stored response again, with
`Idempotent-Replayed: true`, whether it was a success or a client error (4xx). Same key and
another request: 409 `idempotency_key_reused`. Same key while the first request still runs: 409
`idempotency_in_progress`. A server error (5xx or an unhandled exception) or a clash with a
concurrent request (409) releases the key so the caller can retry: like Stripe, no result is
kept for a request that could not run. Keys belong to one API key and are forgotten after
API_IDEMPOTENCY_TTL_HOURS.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from api.errors import error_body
from api.models import ApiKey, IdempotencyRecord

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
# Claiming a key can lose to a first attempt that fails and releases it in between; claiming
# again then succeeds. Two rounds are enough; the bound only guards against a livelock.
_CLAIM_ATTEMPTS = 3


def _request_hash(request: Request) -> str:
    digest = hashlib.sha256()
    digest.update((request.method or "").encode())
    digest.update(b"\0")
    digest.update(request.get_full_path().encode())
    digest.update(b"\0")
    digest.update(request.body)
    return digest.hexdigest()


def _conflict(code: str, message: str) -> Response:
    return Response(error_body("idempotency_error", code, message, HEADER), status=409)


def _claim(api_key: ApiKey, key: str, request: Request, request_hash: str) -> IdempotencyRecord:
    """Insert the record that marks the key as taken, or raise IntegrityError if it is."""
    with transaction.atomic():
        return IdempotencyRecord.objects.create(
            api_key=api_key,
            key=key,
            request_method=request.method or "POST",
            request_path=request.get_full_path()[:500],
            request_hash=request_hash,
            # Wall-clock: replay windows are an operational matter, not business time.
            created_at=timezone.now(),
        )


def _answer_for_existing(existing: IdempotencyRecord, request_hash: str) -> Response:
    if existing.request_hash != request_hash:
        return _conflict(
            "idempotency_key_reused",
            "This Idempotency-Key was already used with a different request; "
            "use a new key for a new request.",
        )
    if existing.response_status is None:
        return _conflict(
            "idempotency_in_progress",
            "A request with this Idempotency-Key is still being processed; retry later.",
        )
    replay = Response(existing.response_body, status=existing.response_status)
    replay[REPLAYED_HEADER] = "true"
    return replay


def idempotent_response(request: Request, call: Callable[[], Response]) -> Response:
    key = request.headers.get(HEADER)
    api_key = request.auth
    if key is None or not isinstance(api_key, ApiKey):
        return call()
    if not key.strip() or len(key) > MAX_KEY_LENGTH:
        return Response(
            error_body(
                "invalid_request_error",
                "invalid_idempotency_key",
                f"An Idempotency-Key is 1 to {MAX_KEY_LENGTH} characters.",
                HEADER,
            ),
            status=400,
        )
    request_hash = _request_hash(request)
    records = IdempotencyRecord.objects.filter(api_key=api_key, key=key)
    expired_before = timezone.now() - timedelta(hours=settings.API_IDEMPOTENCY_TTL_HOURS)
    records.filter(created_at__lt=expired_before).delete()

    record: IdempotencyRecord | None = None
    for _ in range(_CLAIM_ATTEMPTS):
        try:
            record = _claim(api_key, key, request, request_hash)
            break
        except IntegrityError:
            existing = records.first()
            if existing is not None:
                return _answer_for_existing(existing, request_hash)
            # Released by a failed first attempt since our insert collided: claim again.
    if record is None:
        return _conflict("idempotency_in_progress", "Retry the request.")

    try:
        response = call()
    except BaseException:
        record.delete()
        raise
    if response.status_code >= 500 or response.status_code == 409:
        record.delete()
        return response
    record.response_status = response.status_code
    record.response_body = (
        json.loads(JSONRenderer().render(response.data)) if response.data is not None else None
    )
    record.save(update_fields=["response_status", "response_body"])
    return response
