"""The embedded developer runner (`python -m config.dev`) on a machine with no servers configured.

Each test starts real embedded PostgreSQL / Redis servers in its own short data directory and
checks that they are reachable while the runner lives and gone once it has exited.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import redis

from config import embedded
from config.embedded import BASE_DIR
from tests.config.conftest import PYTHON, processes_in_session, processes_under, runner_env

# Runs under `config.dev exec`: reaches both servers, shows where postgres keeps its data.
PROBE = """
import os, sys, psycopg, redis
with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
    database = conn.execute("SELECT current_database()").fetchone()[0]
    data_directory = conn.execute("SHOW data_directory").fetchone()[0]
    conn.execute("CREATE TABLE IF NOT EXISTS probe (note text)")
    conn.execute("INSERT INTO probe VALUES (%s)", [sys.argv[1]])
    notes = [row[0] for row in conn.execute("SELECT note FROM probe ORDER BY note")]
client = redis.Redis.from_url(os.environ["REDIS_URL"])
client.set("probe", "pong")
print("OK", database, data_directory, client.get("probe").decode(), ",".join(notes))
print("REDIS_URL", os.environ["REDIS_URL"])
sys.exit(int(sys.argv[2]))
"""


def _exec_probe(data_dir: Path, note: str, exit_code: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        [PYTHON, "-m", "config.dev", "exec", "--", PYTHON, "-c", PROBE, note, str(exit_code)],
        cwd=BASE_DIR,
        env=runner_env(data_dir),
        stdin=subprocess.DEVNULL,  # as in CI
        capture_output=True,
        text=True,
        timeout=60,
    )


SCHEDULE_PROBE = """
from django_celery_beat.models import IntervalSchedule, PeriodicTask
every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
PeriodicTask.objects.create(
    name="embedded-probe", task="celery.backend_cleanup", interval=every_second
)
"""


def _accepts_connections(url: str) -> bool:
    host, port = re.fullmatch(r"redis://([\d.]+):(\d+)/0", url).groups()  # type: ignore[union-attr]
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return False
    return True


def test_exec_runs_the_command_against_embedded_servers_and_stops_them(
    embedded_data_dir: Path,
) -> None:
    started = time.monotonic()

    result = _exec_probe(embedded_data_dir, "first", exit_code=3)

    assert result.returncode == 3, result.stderr  # the command's own exit code
    lines = result.stdout.splitlines()
    assert lines[0] == f"OK platform {embedded_data_dir / 'pg'} pong first"
    redis_url = lines[1].removeprefix("REDIS_URL ")
    assert not _accepts_connections(redis_url)
    assert processes_under(embedded_data_dir) == []
    assert json.loads((embedded_data_dir / "pg" / ".handle_pids.json").read_text()) == []
    assert not (embedded_data_dir / "redis" / "dump.rdb").exists()  # exec's redis keeps nothing
    assert time.monotonic() - started < 20


def test_a_runner_that_died_does_not_keep_postgres_running_forever(
    embedded_data_dir: Path,
) -> None:
    # given a data directory whose last runner was SIGKILLed while holding the server
    assert _exec_probe(embedded_data_dir, "first", exit_code=0).returncode == 0
    dead = subprocess.Popen(["true"])  # noqa: S607
    dead.wait()
    handles = embedded_data_dir / "pg" / ".handle_pids.json"
    handles.write_text(json.dumps([dead.pid]))

    # when the next runner comes and goes
    result = _exec_probe(embedded_data_dir, "second", exit_code=0)

    # then it saw the data of the first, and stopped the server on the way out
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].endswith(" pong first,second")
    assert json.loads(handles.read_text()) == []
    assert processes_under(embedded_data_dir) == []


def test_the_platform_redis_keeps_its_data_and_the_exec_one_does_not(
    embedded_data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embedded, "DATA_DIR", embedded_data_dir)

    with embedded.embedded_redis(persistent=True) as url:
        redis.Redis.from_url(url).set("kept", "yes")
    with embedded.embedded_redis(persistent=True) as url:
        kept_by_platform = redis.Redis.from_url(url).get("kept")
    with embedded.embedded_redis(persistent=False) as url:
        seen_by_exec = redis.Redis.from_url(url).get("kept")
        redis.Redis.from_url(url).set("kept", "overwritten")
    with embedded.embedded_redis(persistent=True) as url:
        after_exec = redis.Redis.from_url(url).get("kept")

    assert kept_by_platform == b"yes"
    assert seen_by_exec is None
    assert after_exec == b"yes"
    assert (embedded_data_dir / "redis" / "dump.rdb").exists()
    assert processes_under(embedded_data_dir) == []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_run_refuses_a_web_port_in_use_before_starting_anything(embedded_data_dir: Path) -> None:
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        result = subprocess.run(  # noqa: S603
            [PYTHON, "-m", "config.dev", "run", "--port", str(port)],
            cwd=BASE_DIR,
            env=runner_env(embedded_data_dir),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
        )

    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (embedded_data_dir / "pg").exists()


def _wait_for(log: Path, pattern: str, runner: subprocess.Popen[bytes], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text()
        if re.search(pattern, text):
            return text
        if runner.poll() is not None:
            pytest.fail(f"the runner exited ({runner.returncode}) early:\n{text}")
        time.sleep(0.2)
    pytest.fail(f"no {pattern!r} within {timeout}s:\n{log.read_text()}")


def test_run_serves_the_platform_and_ctrl_c_stops_every_process(
    embedded_data_dir: Path, tmp_path: Path
) -> None:
    port = _free_port()
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        runner = subprocess.Popen(  # noqa: S603
            [PYTHON, "-m", "config.dev", "run", "--port", str(port)],
            cwd=BASE_DIR,
            env=runner_env(embedded_data_dir),
            stdin=subprocess.DEVNULL,  # not attached to a terminal, as in CI
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own terminal session: the group Ctrl-C would hit
            # A runner started from a non-interactive shell's background job inherits an ignored
            # SIGINT; a terminal's foreground job (what this test plays) has the default.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        _wait_for(log, r"API docs\s+http://", runner, timeout=120)
        login = f"http://127.0.0.1:{port}/admin/login/"
        with urllib.request.urlopen(login, timeout=10) as page:  # noqa: S310 - http only
            assert page.status == 200
        text = _wait_for(log, r"beat: Starting", runner, timeout=30)
        database = re.search(r"Database\s+(\S+)", text).group(1)  # type: ignore[union-attr]
        broker = re.search(r"Broker\s+(redis://127\.0\.0\.1:\S+)", text).group(1)  # type: ignore[union-attr]
        assert f"Connected to {broker}" in text  # the worker
        # Beat talks to redis only when something is due: schedule a built-in task every second
        # and watch it go from beat through the embedded redis to the worker.
        subprocess.run(  # noqa: S603
            [PYTHON, "manage.py", "shell", "-c", SCHEDULE_PROBE],
            cwd=BASE_DIR,
            env=runner_env(embedded_data_dir, DATABASE_URL=database, DEBUG="true"),
            check=True,
            capture_output=True,
            timeout=60,
        )
        _wait_for(log, r"Sending due task embedded-probe \(celery\.backend_cleanup\)", runner, 30)
        _wait_for(log, r"Task celery\.backend_cleanup\[[\w-]+\] succeeded", runner, timeout=30)
        # the runner, web, beat, the worker and its two pool processes
        assert len(processes_in_session(runner.pid)) >= 6
        assert processes_under(embedded_data_dir) != []  # postgres and redis are up

        os.killpg(runner.pid, signal.SIGINT)  # Ctrl-C
        exit_code = runner.wait(timeout=60)
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait()

    assert exit_code == 0, log.read_text()
    assert "stopping..." in log.read_text()
    assert processes_in_session(runner.pid) == []
    assert processes_under(embedded_data_dir) == []
    assert (embedded_data_dir / "redis" / "dump.rdb").exists()  # saved on the way out
