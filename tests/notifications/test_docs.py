"""The README names every setting of the notices and every template they use."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from subscriptions.notices import PRICE_CHANGE, RENEWAL, TRIAL_ENDING

DOC = Path(settings.BASE_DIR) / "README.md"


def test_the_doc_lists_the_settings_with_their_defaults() -> None:
    text = DOC.read_text()

    for name in (
        "RENEWAL_NOTICE_DAYS",
        "TRIAL_ENDING_NOTICE_DAYS",
        "LONG_TRIAL_NOTICE_DAYS",
        "PRICE_CHANGE_NOTICE_DAYS",
        "PORTAL_BASE_URL",
        "NOTIFICATION_RETRY_SCHEDULE",
        "NOTIFICATION_SEND_LEASE_SECONDS",
        "EMAIL_URL",
    ):
        assert f"`{name}`" in text, name
    assert '`{"year": 30, "quarter": 7, "month": 0, "week": 0, "day": 0}`' in text
    assert "`300,1800,7200,43200,86400`" in text


def test_the_templates_it_names_exist() -> None:
    text = DOC.read_text()

    for kind in (RENEWAL, TRIAL_ENDING, PRICE_CHANGE):
        assert f"`{kind}`" in text
        for suffix in ("txt", "html"):
            assert f"`{kind}.{suffix}`" in text
            assert (Path(settings.BASE_DIR) / "templates" / "emails" / f"{kind}.{suffix}").exists()
