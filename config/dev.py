"""The developer runner behind `make run` and `make test`.

python -m config.dev run            # services, migrate, demo data, web + worker + beat
python -m config.dev exec -- CMD    # run CMD with DATABASE_URL / REDIS_URL set

Servers missing from the environment are started embedded (config.embedded) and stopped again
on the way out. `run` supervises its children itself: each lives in its own process group, so a
Ctrl-C reaches only the runner, which stops them in order, then kills whatever is left of each
group (celery's pool processes included). A second Ctrl-C skips the grace period.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import socket
import subprocess
import sys
import time
from types import FrameType
from typing import cast

from config.embedded import BASE_DIR, DATA_DIR, die_with_parent, services_environment

PYTHON = sys.executable
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
GRACE_SECONDS = 20
SEED_COMMAND = "seed_demo"

# Exit 0 if the management command named in argv[1] exists, 3 if it does not.
_HAS_COMMAND = (
    "import sys, django; django.setup(); "
    "from django.core.management import get_commands; "
    "sys.exit(0 if sys.argv[1] in get_commands() else 3)"
)


class StopRequested(Exception):
    """Raised by the first stop signal, so start-up steps end without a traceback."""


def _exit_status(returncode: int) -> int:
    """A child's return code as a shell reports it: killed by signal N is 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def _port_problem(host: str, port: int) -> str | None:
    """Why the web server could not listen on host:port, or None if it can."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        return f"cannot resolve HOST={host!r}: {error}"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as runserver does
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return (
                    f"port {port} on {host} is already in use (another `make run`?). "
                    f"Stop that process or choose another port: PORT={port + 1} make run"
                )
            return f"cannot listen on {host}:{port}: {error.strerror}"
    return None


def _manage(env: dict[str, str], *args: str) -> None:
    result = subprocess.run(  # noqa: S603
        [PYTHON, "manage.py", *args], env=env, cwd=BASE_DIR, stdin=subprocess.DEVNULL, check=False
    )
    if result.returncode != 0:
        raise subprocess.CalledProcessError(result.returncode, ["manage.py", *args])


def _command_exists(env: dict[str, str], name: str) -> bool:
    result = subprocess.run(  # noqa: S603
        [PYTHON, "-c", _HAS_COMMAND, name], env=env, cwd=BASE_DIR, stdin=subprocess.DEVNULL
    )
    if result.returncode not in (0, 3):
        raise subprocess.CalledProcessError(result.returncode, ["get_commands", name])
    return result.returncode == 0


def _seed(env: dict[str, str]) -> bool:
    """Load the demo data; False (and say why) while the seed_demo command does not exist yet."""
    if not _command_exists(env, SEED_COMMAND):
        print(
            f"\n  NOTE: no `{SEED_COMMAND}` management command in this checkout yet: "
            "starting without demo data.\n",
            flush=True,
        )
        return False
    _manage(env, SEED_COMMAND)
    return True


def _commands(host: str, port: int) -> dict[str, list[str]]:
    """The processes, in start order: the web server last, so that the URLs printed once it
    listens come after the Celery banners instead of drowning in them."""
    celery = [PYTHON, "-m", "celery", "-A", "config"]
    return {
        "worker": [*celery, "worker", "-l", "info", "-c", "2", "-n", "worker@%h"],
        "beat": [
            *celery,
            "beat",
            "-l",
            "info",
            "--scheduler",
            "django_celery_beat.schedulers:DatabaseScheduler",
        ],
        "web": [PYTHON, "manage.py", "runserver", f"{host}:{port}", "--noreload"],
    }


def _start(cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603
        cmd,
        env=env,
        cwd=BASE_DIR,
        stdin=subprocess.DEVNULL,
        process_group=0,  # the terminal's Ctrl-C reaches only the runner, which stops us in order
        preexec_fn=die_with_parent(),  # the runner is single-threaded, so preexec_fn is safe
    )


def _wait_until_ready(
    host: str, port: int, redis_url: str, processes: dict[str, subprocess.Popen[bytes]]
) -> bool:
    """Wait until the web server accepts connections and the worker consumes from the broker
    (a BRPOP client in redis), so the URLs printed next answer and land below the banners."""
    import redis

    broker = redis.Redis.from_url(redis_url, socket_timeout=2)
    deadline = time.monotonic() + 120
    listening = consuming = False
    while not (listening and consuming) and time.monotonic() < deadline:
        if any(process.poll() is not None for process in processes.values()):
            return False
        if not listening:
            with contextlib.suppress(OSError), socket.create_connection((host, port), 0.5):
                listening = True
        if not consuming:
            with contextlib.suppress(redis.RedisError):
                clients = cast("list[dict[str, str]]", broker.client_list())  # sync client
                consuming = any(client.get("cmd") == "brpop" for client in clients)
        time.sleep(0.1)
    broker.close()
    return listening and consuming


def _kill_group(process: subprocess.Popen[bytes], sig: int) -> None:
    # While any member lives, the group id cannot be reused, so this never hits a stranger.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def _stop_all(processes: dict[str, subprocess.Popen[bytes]], stops: list[int]) -> None:
    """SIGTERM each group (celery finishes its running tasks), then SIGKILL what is left.

    A stop signal arriving meanwhile (a second Ctrl-C) cuts the grace period short.
    """
    signals_before = len(stops)
    for process in processes.values():
        if process.poll() is None:
            _kill_group(process, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_SECONDS
    for name, process in processes.items():
        while process.poll() is None and time.monotonic() < deadline:
            if len(stops) > signals_before:
                break
            time.sleep(0.1)
        if process.poll() is None:
            print(f"{name} did not stop in time; killing it", file=sys.stderr, flush=True)
    for process in processes.values():
        _kill_group(process, signal.SIGKILL)  # the leader and any leftover (pool) children
        process.wait()


def run(host: str, port: int) -> int:
    problem = _port_problem(host, port)
    if problem:
        print(f"make run: {problem}", file=sys.stderr)
        return 1
    stops: list[int] = []
    interruptible = [True]

    def on_stop(signum: int, frame: FrameType | None) -> None:
        stops.append(signum)
        if interruptible[0] and len(stops) == 1:
            raise StopRequested

    for sig in STOP_SIGNALS:
        signal.signal(sig, on_stop)
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        with services_environment(persistent=True) as env:
            env.setdefault("DEBUG", "true")
            env.setdefault("TEST_MODE", "true")
            env["PYTHONUNBUFFERED"] = "1"  # children's logs interleave as they happen
            try:
                _manage(env, "migrate", "--no-input", "-v", "0")
                seeded = _seed(env)
                for name, cmd in _commands(host, port).items():
                    processes[name] = _start(cmd, env)
                if _wait_until_ready(host, port, env["REDIS_URL"], processes):
                    _print_urls(host, port, env, seeded=seeded)
                while all(p.poll() is None for p in processes.values()):
                    time.sleep(0.25)
                name, process = next((n, p) for n, p in processes.items() if p.poll() is not None)
                print(f"{name} exited ({process.returncode}); stopping the others", file=sys.stderr)
                return _exit_status(process.returncode) or 1
            except StopRequested:
                print("\nstopping...", flush=True)
                return 0
            finally:
                interruptible[0] = False  # from here on a signal only hurries the shutdown
                _stop_all(processes, stops)
    except StopRequested:  # while the embedded services were starting
        return 0
    except subprocess.CalledProcessError as error:
        print(f"make run: {' '.join(error.cmd)} failed (exit {error.returncode})", file=sys.stderr)
        return error.returncode or 1
    except RuntimeError as error:  # an embedded service could not start
        print(f"make run: {error}", file=sys.stderr)
        return 1


def _print_urls(host: str, port: int, env: dict[str, str], *, seeded: bool) -> None:
    base = f"http://{host}:{port}"
    demo = (
        "  Demo logins and the demo API key are listed above (seed_demo).\n"
        if seeded
        else "  No demo data (seed_demo does not exist yet).\n"
    )
    print(
        f"\n  Web        {base}/\n  Admin      {base}/admin/\n  API        {base}/api/v1/\n"
        f"  API docs   {base}/api/docs/  (Redoc: {base}/api/redoc/)\n"
        f"  Database   {env['DATABASE_URL']}\n  Broker     {env['REDIS_URL']}\n"
        f"{demo}"
        f"  Ctrl-C stops everything; data stays in {DATA_DIR} for the next run.\n",
        flush=True,
    )


def exec_command(command: list[str]) -> int:
    """Run `command` in the foreground with the services' environment; return its exit code.

    The command shares the terminal's process group, so Ctrl-C reaches it directly (pytest
    prints its summary, a shell stays usable); the runner ignores that Ctrl-C and waits, and
    passes SIGTERM / SIGHUP on to the command.
    """
    child: list[subprocess.Popen[bytes]] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        if child and signum != signal.SIGINT:
            with contextlib.suppress(ProcessLookupError):
                child[0].send_signal(signum)

    for sig in STOP_SIGNALS:
        signal.signal(sig, forward)  # a Python handler, so the child starts with the default
    try:
        with services_environment() as env:
            env.setdefault("DEBUG", "true")
            try:
                child.append(subprocess.Popen(command, env=env, cwd=BASE_DIR))  # noqa: S603
            except OSError as error:
                print(f"config.dev exec: cannot run {command[0]}: {error}", file=sys.stderr)
                return 127
            return _exit_status(child[0].wait())
    except RuntimeError as error:
        print(f"config.dev exec: {error}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m config.dev")
    sub = parser.add_subparsers(dest="action", required=True)
    run_parser = sub.add_parser("run", help="run the platform with demo data")
    run_parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    run_parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    exec_parser = sub.add_parser("exec", help="run a command with the services' environment")
    exec_parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.action == "run":
        return run(args.host, args.port)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("exec needs a command")
    return exec_command(command)


if __name__ == "__main__":
    sys.exit(main())
