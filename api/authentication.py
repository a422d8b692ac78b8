from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from api.models import ApiKey
from api.services import api_key_hash
from core.actors import Actor
from core.models import AuditLog
from customers.models import Partner


@dataclass(frozen=True)
class ApiClient:
    """The caller behind an API key: what `request.user` is in the API."""

    key: ApiKey
    is_authenticated: bool = True

    @property
    def partner(self) -> Partner | None:
        return self.key.partner

    @property
    def actor(self) -> Actor:
        return Actor(type=AuditLog.ActorType.API_KEY, id=str(self.key.pk), label=str(self.key))


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[ApiClient, ApiKey] | None:
        header = authentication.get_authorization_header(request).decode(errors="replace")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        # Authentication schemes are case-insensitive (RFC 9110, section 11.1).
        if scheme.lower() != self.keyword.lower() or not token.strip():
            raise exceptions.AuthenticationFailed("Use `Authorization: Bearer <api key>`.")
        key = (
            ApiKey.objects.select_related("partner")
            .filter(key_hash=api_key_hash(token.strip()), revoked_at__isnull=True)
            .first()
        )
        if key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        if key.partner is not None and not key.partner.active:
            raise exceptions.AuthenticationFailed("This partner is inactive.")
        # Wall-clock bookkeeping, not business time: throttle the write to once a minute.
        now = timezone.now()
        if key.last_used_at is None or now - key.last_used_at > timedelta(minutes=1):
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        return ApiClient(key=key), key

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "api.authentication.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema: object) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "bearerFormat": "API key"}
