"""The developer runner behind `make run` and `make test`.

python -m config.dev run            # services, migrate, demo data, web + worker + beat
python -m config.dev exec -- CMD    # run CMD with DATABASE_URL / REDIS_URL set
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

from config.embedded import BASE_DIR, services_environment

PYTHON = sys.executable


def _manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([PYTHON, "manage.py", *args], env=env, cwd=BASE_DIR, check=True)  # noqa: S603


def run(host: str, port: int) -> int:
    with services_environment() as env:
        env.setdefault("DEBUG", "true")
        env.setdefault("TEST_MODE", "true")
        _manage(env, "migrate", "--no-input", "-v", "0")
        _manage(env, "seed_demo")
        commands = {
            "web": [PYTHON, "manage.py", "runserver", f"{host}:{port}", "--noreload"],
            "worker": [
                PYTHON,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-l",
                "info",
                "-c",
                "2",
                "-n",
                "worker@%h",
            ],
            "beat": [
                PYTHON,
                "-m",
                "celery",
                "-A",
                "config",
                "beat",
                "-l",
                "info",
                "--scheduler",
                "django_celery_beat.schedulers:DatabaseScheduler",
            ],
        }
        processes = {
            name: subprocess.Popen(cmd, env=env, cwd=BASE_DIR)  # noqa: S603
            for name, cmd in commands.items()
        }
        base = f"http://{host}:{port}"
        print(
            f"\n  Web        {base}/\n  Admin      {base}/admin/\n  API        {base}/api/v1/\n"
            f"  API docs   {base}/api/docs/  (Redoc: {base}/api/redoc/)\n"
            f"  Database   {env['DATABASE_URL']}\n  Broker     {env['REDIS_URL']}\n"
            "  Demo logins and the demo API key are listed above (seed_demo).\n"
            "  Ctrl-C stops everything; data stays in .data/ for the next run.\n",
            flush=True,
        )
        exit_code = 0
        try:
            while all(p.poll() is None for p in processes.values()):
                time.sleep(0.5)
            exit_code = next(p.returncode for p in processes.values() if p.poll() is not None)
            print(f"a process exited ({exit_code}); stopping the others", file=sys.stderr)
        except KeyboardInterrupt:
            print("\nstopping...", flush=True)
        finally:
            for process in processes.values():
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in processes.values():
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
        return exit_code


def exec_command(command: list[str]) -> int:
    with services_environment() as env:
        env.setdefault("DEBUG", "true")
        return subprocess.call(command, env=env, cwd=BASE_DIR)  # noqa: S603


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
