"""API views for catalog (filled in by the catalog work)."""

from rest_framework.routers import DefaultRouter


def register(router: DefaultRouter) -> None:
    """Register this module's viewsets on the v1 router."""
