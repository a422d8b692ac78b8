"""API views for customers (filled in by the customers work)."""

from rest_framework.routers import DefaultRouter


def register(router: DefaultRouter) -> None:
    """Register this module's viewsets on the v1 router."""
