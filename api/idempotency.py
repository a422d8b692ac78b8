"""Idempotency-Key handling for POST requests (Stripe's contract).

Same key and same request: the stored response again, with `Idempotent-Replayed: true`.
Same key and another request: 409. A server error releases the key so the caller can retry.
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
MAX_KEY_LENGTH = 255


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


def idempotent_response(request: Request, call: Callable[[], Response]) -> Response:
    key = request.headers.get(HEADER)
    api_key = request.auth
    if key is None or not isinstance(api_key, ApiKey):
        return call()
    if not key or len(key) > MAX_KEY_LENGTH:
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
    # Wall-clock: replay windows are an operational matter, not business time.
    now = timezone.now()
    expired_before = now - timedelta(hours=settings.API_IDEMPOTENCY_TTL_HOURS)
    IdempotencyRecord.objects.filter(
        api_key=api_key, key=key, created_at__lt=expired_before
    ).delete()
    try:
        with transaction.atomic():
            record = IdempotencyRecord.objects.create(
                api_key=api_key,
                key=key,
                request_method=request.method or "POST",
                request_path=request.get_full_path()[:500],
                request_hash=request_hash,
                created_at=now,
            )
    except IntegrityError:
        existing = IdempotencyRecord.objects.filter(api_key=api_key, key=key).first()
        if existing is None:  # released by a failed first attempt in the meantime
            return _conflict("idempotency_retry", "Retry the request.")
        if existing.request_hash != request_hash:
            return _conflict(
                "idempotency_key_reused",
                "This Idempotency-Key was already used with a different request; "
                "use a new key for a new request.",
            )
        if existing.response_status is None:
            return _conflict(
                "idempotency_in_progress",
                "A request with this Idempotency-Key is still being processed.",
            )
        replay = Response(existing.response_body, status=existing.response_status)
        replay["Idempotent-Replayed"] = "true"
        return replay

    try:
        response = call()
    except BaseException:
        record.delete()
        raise
    if response.status_code >= 500:
        record.delete()
        return response
    body = json.loads(JSONRenderer().render(response.data)) if response.data is not None else None
    record.response_status = response.status_code
    record.response_body = body
    record.save(update_fields=["response_status", "response_body"])
    return response
