"""The deployment files: docker-compose.yml, the Dockerfile and .env.example agree with the code.

No Docker engine is needed: the compose file is read as YAML (merge keys resolved), the
Dockerfile as its instructions, and whatever they name is imported or run here.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from celery.app.utils import find_app
from kombu.utils.imports import symbol_by_name

from config.embedded import BASE_DIR

APP_SERVICES = ("web", "worker", "beat")
DOCKERFILE = BASE_DIR / "Dockerfile"


def _compose() -> dict[str, Any]:
    return yaml.safe_load((BASE_DIR / "docker-compose.yml").read_text())


def _services() -> dict[str, Any]:
    return _compose()["services"]


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        keyword, _, arguments = pending.strip().partition(" ")
        instructions.append((keyword.upper(), " ".join(arguments.split())))
        pending = ""
    return instructions


def _dockerfile_cmd() -> list[str]:
    commands = [json.loads(arguments) for keyword, arguments in _dockerfile() if keyword == "CMD"]
    assert len(commands) == 1
    return commands[0]


def test_compose_has_the_stack_and_a_one_shot_migration() -> None:
    services = _services()

    assert set(services) == {"postgres", "redis", "migrate", "web", "worker", "beat"}
    assert services["postgres"]["image"] == "postgres:16"
    assert services["redis"]["image"] == "redis:7"
    assert services["migrate"]["command"] == ["python", "manage.py", "migrate", "--no-input"]
    assert services["migrate"]["restart"] == "no"
    for name in ("migrate", *APP_SERVICES):
        assert services[name]["build"] == "."
        assert services[name]["image"] == "subscriptions-platform:latest"


def test_postgres_and_redis_have_healthchecks_and_keep_their_data_in_volumes() -> None:
    compose = _compose()
    postgres, redis = compose["services"]["postgres"], compose["services"]["redis"]

    assert postgres["healthcheck"]["test"][0] == "CMD-SHELL"
    assert postgres["healthcheck"]["test"][1].startswith("pg_isready ")
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert postgres["volumes"] == ["postgres-data:/var/lib/postgresql/data"]
    assert redis["volumes"] == ["redis-data:/data"]
    assert set(compose["volumes"]) == {"postgres-data", "redis-data"}


def test_app_services_start_after_healthy_servers_and_finished_migrations() -> None:
    services = _services()

    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in APP_SERVICES:
        assert services[name]["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"},
        }, name


@pytest.mark.parametrize("name", ["migrate", *APP_SERVICES])
def test_app_services_are_configured_by_the_environment_in_production_mode(name: str) -> None:
    environment = _services()[name]["environment"]

    assert environment["DATABASE_URL"] == (
        "postgres://${POSTGRES_USER:-platform}:${POSTGRES_PASSWORD:-platform}"
        "@postgres:5432/${POSTGRES_DB:-platform}"
    )
    assert environment["REDIS_URL"] == "redis://redis:6379/0"
    # required: compose refuses to start without it rather than run with an empty key
    assert environment["SECRET_KEY"].startswith("${SECRET_KEY:?")
    assert environment["DEBUG"] == "false"
    for variable in (
        "ALLOWED_HOSTS",
        "EMAIL_URL",
        "TEST_MODE",
        "STRIPE_SECRET_KEY",
        "STRIPE_PUBLISHABLE_KEY",
        "STRIPE_WEBHOOK_SECRET",
        "STRIPE_API_BASE",
    ):
        assert environment[variable].startswith("${" + variable + ":-"), variable
    assert environment["TEST_MODE"] == "${TEST_MODE:-false}"


def test_every_compose_variable_is_documented_in_env_example_and_none_is_unused() -> None:
    used = set(re.findall(r"\$\{(\w+)", (BASE_DIR / "docker-compose.yml").read_text()))
    example = (BASE_DIR / ".env.example").read_text()
    documented = set(re.findall(r"^(\w+)=", example, flags=re.MULTILINE))

    assert used == documented
    assert "SECRET_KEY=\n" in example  # no sample secret anyone could deploy with


# Set by docker-compose.yml itself, or only by the dev runner and the test suite.
NOT_FROM_ENV_FILE = {
    "DATABASE_URL",
    "REDIS_URL",
    "DEBUG",
    "CELERY_TASK_ALWAYS_EAGER",
    "STATIC_ROOT",
}


def test_every_setting_read_from_the_environment_reaches_the_containers_and_is_documented() -> None:
    read = set(re.findall(r'env\.\w+\(\s*"(\w+)"', (BASE_DIR / "config/settings.py").read_text()))
    example = (BASE_DIR / ".env.example").read_text()
    documented = set(re.findall(r"^(?:# )?(\w+)=", example, flags=re.MULTILINE))

    assert {"PAYMENT_GATEWAY", "DUNNING_FINAL_ACTION", "WEBHOOK_RETRY_SCHEDULE"} <= read
    assert read - NOT_FROM_ENV_FILE <= documented, read - NOT_FROM_ENV_FILE - documented
    for name in ("migrate", *APP_SERVICES):
        assert _services()[name]["env_file"] == [{"path": ".env", "required": False}], name


def test_web_runs_gunicorn_on_the_wsgi_application_the_image_defaults_to() -> None:
    command = _services()["web"]["command"]

    assert command == _dockerfile_cmd()
    assert command[:2] == ["gunicorn", "config.wsgi:application"]
    module, _, attribute = command[1].partition(":")
    application = getattr(importlib.import_module(module), attribute)
    assert callable(application)
    assert _services()["web"]["ports"] == ["${WEB_PORT:-8000}:8000"]
    assert command[command.index("--bind") + 1] == "0.0.0.0:8000"


def test_worker_and_beat_run_the_celery_app_of_the_config_package() -> None:
    services = _services()
    worker, beat = services["worker"]["command"], services["beat"]["command"]

    assert worker[:4] == ["celery", "-A", "config", "worker"]
    assert beat[:4] == ["celery", "-A", "config", "beat"]
    scheduler = beat[beat.index("--scheduler") + 1]
    assert scheduler == "django_celery_beat.schedulers:DatabaseScheduler"
    celery_module = importlib.import_module("config.celery")
    assert find_app("config") is celery_module.app
    assert symbol_by_name(scheduler).__name__ == "DatabaseScheduler"


def test_the_image_is_python_slim_and_runs_as_an_unprivileged_user() -> None:
    instructions = _dockerfile()
    keywords = [keyword for keyword, _ in instructions]

    assert instructions[0] == ("FROM", "python:3.11-slim")
    users = [arguments for keyword, arguments in instructions if keyword == "USER"]
    assert users == ["app"]
    assert keywords.index("USER") > max(i for i, k in enumerate(keywords) if k == "RUN")
    assert ("EXPOSE", "8000") in instructions


def test_the_image_installs_the_dependencies_pinned_in_pyproject() -> None:
    runs = [arguments for keyword, arguments in _dockerfile() if keyword == "RUN"]
    install = next(run for run in runs if "pip install" in run)

    assert "tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']" in install
    assert "--requirement /tmp/requirements.txt" in install


def test_the_build_time_collectstatic_step_works_with_its_throwaway_settings(
    tmp_path: Path,
) -> None:
    step = next(
        arguments
        for keyword, arguments in _dockerfile()
        if keyword == "RUN" and "collectstatic" in arguments
    )
    # Nothing from this machine: only what the image build would have, plus where to write.
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "STATIC_ROOT": str(tmp_path / "static"),
    }

    result = subprocess.run(  # noqa: S603
        ["/bin/sh", "-c", step],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "static" / "staticfiles.json").read_text())
    assert "admin/css/base.css" in manifest["paths"]  # hashed names: the production storage ran
    assert manifest["paths"]["admin/css/base.css"] != "admin/css/base.css"
    assert (tmp_path / "static" / "drf_spectacular_sidecar").is_dir()  # Swagger UI, no CDN
