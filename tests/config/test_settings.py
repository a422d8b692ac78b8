"""Production settings: `DEBUG=false` demands a strong SECRET_KEY and turns on every TLS guard.

Settings are read once per process, so each case imports them in a fresh interpreter with a
controlled environment, as a server would start.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from config.embedded import BASE_DIR
from tests.config.conftest import PYTHON

STRONG_KEY = "k3Yq-9vGZ1m0TfXwPzR7bHc2LsN8aUeJ4dQyVoIh6tWnBgK5xC_pM_rE0jSlA3uF"
SECURITY_SETTINGS = [
    "DEBUG",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_SSL_REDIRECT",
    "SECURE_PROXY_SSL_HEADER",
]
# Read through django.conf.settings, so Django's defaults show where ours set nothing.
DUMP = (
    "import json, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings'; "
    "from django.conf import settings as s; "
    f"print(json.dumps({{name: getattr(s, name) for name in {SECURITY_SETTINGS!r}}}))"
)


def _environment(**variables: str) -> dict[str, str]:
    """Only what a server would be given: no inherited DEBUG, SECRET_KEY or Django settings."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATABASE_URL": "postgres://platform@db.invalid:5432/platform",
        "SECRET_KEY": "",
    }
    env.update(variables)
    return env


def _python(code: str, **variables: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        [PYTHON, "-c", code],
        cwd=BASE_DIR,
        env=_environment(**variables),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_refuses_to_start_without_a_secret_key() -> None:
    result = _python("import config.settings", DEBUG="false")

    assert result.returncode == 1
    assert (
        "django.core.exceptions.ImproperlyConfigured: SECRET_KEY must be set when DEBUG is off"
        in result.stderr
    )


def test_debug_defaults_to_off_so_a_forgotten_variable_is_production() -> None:
    result = _python("import config.settings")

    assert result.returncode == 1
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


@pytest.mark.parametrize(
    "weak_key",
    [
        pytest.param("django-insecure-" + STRONG_KEY, id="django-insecure prefix"),
        pytest.param(STRONG_KEY[:49], id="49 characters"),
        pytest.param("abcd" * 20, id="4 distinct characters"),
    ],
)
def test_production_refuses_a_weak_secret_key(weak_key: str) -> None:
    result = _python("import config.settings", DEBUG="false", SECRET_KEY=weak_key)

    assert result.returncode == 1
    assert "ImproperlyConfigured: SECRET_KEY is too weak for production" in result.stderr


def test_production_with_a_strong_key_turns_on_the_tls_guards() -> None:
    result = _python(DUMP, DEBUG="false", SECRET_KEY=STRONG_KEY)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "DEBUG": False,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_HSTS_SECONDS": 31_536_000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_SSL_REDIRECT": True,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
    }


def test_development_runs_without_a_key_and_without_the_tls_guards() -> None:
    result = _python(DUMP, DEBUG="true")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "DEBUG": True,
        "SESSION_COOKIE_SECURE": False,
        "CSRF_COOKIE_SECURE": False,
        "SECURE_HSTS_SECONDS": 0,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": False,
        "SECURE_SSL_REDIRECT": False,
        "SECURE_PROXY_SSL_HEADER": None,
    }


def test_check_deploy_finds_nothing_to_warn_about_in_production() -> None:
    result = subprocess.run(  # noqa: S603
        [PYTHON, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR,
        env=_environment(DEBUG="false", SECRET_KEY=STRONG_KEY, ALLOWED_HOSTS="billing.example.com"),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "System check identified no issues (0 silenced)."
