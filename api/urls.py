from django.urls import include, path
from rest_framework.routers import DefaultRouter

from api.views import (
    audit,
    billing,
    billing_runs,
    catalog,
    customers,
    dunning,
    ledger,
    notifications,
    payments,
    subscriptions,
    usage,
    webhooks,
)
from api.views.test_clock import TestClockAdvanceView, TestClockView

app_name = "api"

router = DefaultRouter(trailing_slash=False)
router.include_root_view = False
catalog.register(router)
customers.register(router)
billing.register(router)
payments.register(router)
ledger.register(router)
usage.register(router)
subscriptions.register(router)
webhooks.register(router)
notifications.register(router)
billing_runs.register(router)
dunning.register(router)

urlpatterns = [
    path("test_clock", TestClockView.as_view(), name="test-clock"),
    path("test_clock/advance", TestClockAdvanceView.as_view(), name="test-clock-advance"),
    path("audit_log", audit.AuditLogListView.as_view(), name="audit-log"),
    path("", include(router.urls)),
]
