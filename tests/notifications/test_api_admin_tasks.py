"""The notification log through the API (admin scope) and the admin (read-only); the tasks and
their database schedule."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from rest_framework.test import APIClient

from config.celery import app as celery_app
from core.notifications.models import Notification
from core.notifications.services import notification_send
from core.notifications.tasks import notification_send_due
from subscriptions.notices import notices_send_today
from tests.conftest import FIXED_NOW
from tests.notifications.conftest import SmtpServer

pytestmark = pytest.mark.django_db


def logged(
    kind: str, key: str, *, customer_id: int | None, to: str = "ada@example.com"
) -> Notification:
    notification = notification_send(
        kind=kind,
        dedupe_key=key,
        to=to,
        subject=f"About {key}",
        template="trial_ending",
        context={
            "customer_name": "Ada",
            "plan_name": "Gold",
            "trial_ends_on": date(2026, 2, 1),
            "charged_on": date(2026, 2, 1),
            "amount": "30.00 USD",
            "interval": "month",
            "subscription_id": 3,
        },
        customer_id=customer_id,
        related=("subscriptions.subscription", 3),
    )
    assert notification is not None
    return notification


@pytest.fixture
def log(clock: Any) -> dict[str, Notification]:
    """Three notifications written at three moments."""
    first = logged("trial_ending", "trial_ending:3:2026-02-01", customer_id=1)
    clock(FIXED_NOW + timedelta(days=1))
    second = logged("renewal_notice", "renewal_notice:3:2026-03-01", customer_id=1)
    clock(FIXED_NOW + timedelta(days=2))
    third = logged("renewal_notice", "renewal_notice:9:2026-03-01", customer_id=2)
    return {"first": first, "second": second, "third": third}


def ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.json()
    return [item["id"] for item in response.json()["results"]]


def test_the_log_lists_newest_first_with_its_filters(
    api: APIClient, log: dict[str, Notification]
) -> None:
    first, second, third = log["first"].pk, log["second"].pk, log["third"].pk

    assert ids(api.get("/api/v1/notifications")) == [third, second, first]
    assert ids(api.get("/api/v1/notifications?kind=renewal_notice")) == [third, second]
    assert ids(api.get("/api/v1/notifications?customer=1")) == [second, first]
    assert ids(api.get("/api/v1/notifications?created_after=2026-01-16T12:00:00Z")) == [
        third,
        second,
    ]
    assert ids(api.get("/api/v1/notifications?created_before=2026-01-16T12:00:00Z")) == [first]
    assert ids(api.get("/api/v1/notifications?kind=renewal_notice&customer=2")) == [third]
    assert ids(api.get("/api/v1/notifications?status=failed")) == []
    assert ids(api.get("/api/v1/notifications?status=sent&limit=1")) == [third]


def test_a_listed_notification_shows_its_delivery(
    api: APIClient, log: dict[str, Notification]
) -> None:
    (item,) = api.get("/api/v1/notifications?kind=trial_ending").json()["results"]

    assert item == {
        "id": log["first"].pk,
        "kind": "trial_ending",
        "dedupe_key": "trial_ending:3:2026-02-01",
        "recipient": "ada@example.com",
        "subject": "About trial_ending:3:2026-02-01",
        "status": "sent",
        "attempts": 1,
        "error": "",
        "next_attempt_at": None,
        "customer": 1,
        "related": {"type": "subscriptions.subscription", "id": "3"},
        "template": "trial_ending",
        "created_at": "2026-01-15T12:00:00Z",
        "sent_at": "2026-01-15T12:00:00Z",
    }


def test_one_notification_shows_what_was_sent(api: APIClient, log: dict[str, Notification]) -> None:
    response = api.get(f"/api/v1/notifications/{log['first'].pk}")

    assert response.status_code == 200
    body = response.json()
    assert body["body_text"] == log["first"].body_text
    assert "we will charge 30.00 USD for your first month" in body["body_text"]
    assert body["body_html"] == log["first"].body_html
    assert body["status"] == "sent"


def test_a_failed_notification_is_visible_with_its_error(
    api: APIClient, clock: Any, smtp: SmtpServer
) -> None:
    smtp.refuse_recipient("550 5.1.1 No such user")
    failed = logged("renewal_notice", "renewal_notice:1:2026-02-01", customer_id=5)

    (item,) = api.get("/api/v1/notifications?status=failed").json()["results"]

    assert item["id"] == failed.pk
    assert item["status"] == "failed"
    assert "No such user" in item["error"]
    assert item["sent_at"] is None


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("customer=abc", "customer"),
        ("created_after=yesterday", "created_after"),
        ("status=lost", "status"),
        ("limit=0", "limit"),
    ],
)
def test_bad_filters_are_refused(api: APIClient, query: str, param: str) -> None:
    response = api.get(f"/api/v1/notifications?{query}")

    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_the_log_needs_the_admin_scope(api_client_for: Any, log: dict[str, Notification]) -> None:
    reader = api_client_for(scopes=["read", "write"])

    for path in ("/api/v1/notifications", f"/api/v1/notifications/{log['first'].pk}"):
        response = reader.get(path)
        assert response.status_code == 403
        assert response.json()["error"]["type"] == "permission_error"


def test_an_unknown_notification_is_a_404(api: APIClient) -> None:
    response = api.get("/api/v1/notifications/424242")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "notification_not_found"


def test_the_admin_shows_the_log_read_only(
    admin_client: Client, log: dict[str, Notification]
) -> None:
    changelist = admin_client.get(reverse("admin:notifications_notification_changelist"))
    page = admin_client.get(
        reverse("admin:notifications_notification_change", args=[log["first"].pk])
    )
    add = admin_client.get(reverse("admin:notifications_notification_add"))
    delete = admin_client.post(
        reverse("admin:notifications_notification_delete", args=[log["first"].pk]),
        {"post": "yes"},
    )

    assert changelist.status_code == 200
    assert "About renewal_notice:9:2026-03-01" in changelist.content.decode()
    assert page.status_code == 200
    assert "we will charge 30.00 USD for your first month" in page.content.decode()
    assert "sandbox" in page.content.decode()
    assert add.status_code == 403
    assert delete.status_code == 403
    assert Notification.objects.count() == 3


def test_the_schedules_are_in_the_database() -> None:
    retry = PeriodicTask.objects.get(task="core.notifications.tasks.notification_send_due")
    notices = PeriodicTask.objects.get(task="subscriptions.notices.notices_send_today")

    assert retry.enabled is True
    assert retry.interval is not None
    assert (retry.interval.every, retry.interval.period) == (5, IntervalSchedule.MINUTES)
    assert notices.enabled is True
    assert notices.interval is not None
    assert (notices.interval.every, notices.interval.period) == (1, IntervalSchedule.HOURS)


def test_the_tasks_are_registered_on_the_platform_app_and_acknowledged_late() -> None:
    celery_app.loader.import_default_modules()

    for task in (notification_send_due, notices_send_today):
        assert task.name in celery_app.tasks
        assert celery_app.tasks[task.name].acks_late is True
    assert notification_send_due.name == "core.notifications.tasks.notification_send_due"
    assert notices_send_today.name == "subscriptions.notices.notices_send_today"


def test_the_retry_task_sends_what_is_due(clock: Any, smtp: SmtpServer) -> None:
    smtp.refuse_data("451 4.3.0 Try again later")
    notification = logged("renewal_notice", "renewal_notice:1:2026-02-01", customer_id=1)
    clock(datetime(2026, 1, 15, 12, 5, tzinfo=UTC))

    result = notification_send_due()

    assert result == {"sent": 1, "retrying": 0, "failed": 0}
    notification.refresh_from_db()
    assert notification.status == Notification.Status.SENT
    assert len(smtp.messages) == 1
