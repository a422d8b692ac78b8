"""Base classes every API view uses: idempotent POSTs and the audit actor at hand."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from drf_spectacular.utils import OpenApiParameter
from rest_framework import generics, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer
from rest_framework.views import APIView

from api.authentication import ApiClient
from api.idempotency import idempotent_response
from api.models import ApiKey
from core.actors import Actor
from core.errors import PermissionDeniedError
from customers.models import Partner


class IdempotentDispatchMixin:
    # Wraps POST handlers in the Idempotency-Key contract: `dispatch` mirrors
    # `APIView.dispatch`, adding only the idempotency step between the checks (authentication,
    # scopes, throttling) and the handler. No docstrings on these base classes: drf-spectacular
    # would show them as the description of every endpoint that has none of its own.

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        view: Any = self
        view.args = args
        view.kwargs = kwargs
        drf_request = view.initialize_request(request, *args, **kwargs)
        view.request = drf_request
        view.headers = view.default_response_headers
        try:
            view.initial(drf_request, *args, **kwargs)
            method = drf_request.method.lower()
            handler = (
                getattr(view, method, view.http_method_not_allowed)
                if method in view.http_method_names
                else view.http_method_not_allowed
            )

            def call() -> Response:
                try:
                    return handler(drf_request, *args, **kwargs)
                except Exception as exc:  # noqa: BLE001 - converted to the error shape
                    return view.handle_exception(exc)

            # A POST the view does not take is a 405, not a request worth remembering.
            if drf_request.method == "POST" and handler != view.http_method_not_allowed:
                response = idempotent_response(drf_request, call)
            else:
                response = handler(drf_request, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - DRF's own contract: errors become responses
            response = view.handle_exception(exc)
        view.response = view.finalize_response(drf_request, response, *args, **kwargs)
        return view.response

    @property
    def actor(self) -> Actor:
        request: Request = self.request  # type: ignore[attr-defined]
        client = request.user
        if not isinstance(client, ApiClient):
            raise TypeError("API views run only for requests authenticated by an API key")
        return client.actor


class PlatformAPIView(IdempotentDispatchMixin, APIView):
    pass


class PlatformGenericAPIView(IdempotentDispatchMixin, generics.GenericAPIView):
    pass


class PlatformViewSet(IdempotentDispatchMixin, viewsets.GenericViewSet):
    def paginated_response(self, queryset: Any, serializer_class: type[Serializer]) -> Response:
        """One page of `queryset`, serialized, with the cursor links."""
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(serializer_class(page, many=True).data)


def query_filters(request: Request, serializer_class: type[Serializer]) -> dict[str, Any]:
    """The request's query string, validated (an invalid one is the usual 400)."""
    query = serializer_class(data=request.query_params)
    query.is_valid(raise_exception=True)
    return dict(query.validated_data)


def partner_scope(request: Request) -> Partner | None:
    """The partner a request is confined to; None for a key that sees every customer."""
    key = request.auth
    if not isinstance(key, ApiKey):
        # Fail closed: without a key there is no way to know the scope.
        raise PermissionDeniedError("An API key is required.", code="api_key_required")
    return key.partner


def id_parameter(what: str) -> OpenApiParameter:
    """The `{id}` path parameter of a detail route, for the OpenAPI document."""
    return OpenApiParameter("id", int, OpenApiParameter.PATH, description=f"{what} id.")
