"""The `strongroom` command. Process-starting commands launch the fronts as subprocesses by name,
so this library never imports the web or worker fronts."""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from typing import Sequence

from .config import Settings
from .context import Context
from .store.migrate import upgrade

PY = sys.executable


def web_command(settings: Settings) -> list[str]:
    return [PY, "-m", "gunicorn", "--bind", f"0.0.0.0:{settings.port}", "--worker-class", "gthread",
            "--workers", "2", "--threads", "8", "--timeout", "300", "--access-logfile", "-", "addon.wsgi:app"]


def worker_commands(settings: Settings) -> list[list[str]]:
    """Two pools: events/jobs never wait behind slow git work."""
    base = [PY, "-m", "celery", "-A", "workers.main", "worker", "--loglevel", "INFO",
            "--without-gossip", "--without-mingle"]
    return [base + ["-Q", "strongroom", "-c", "2", "-n", f"default-{os.getpid()}@%h"],
            base + ["-Q", "strongroom.git", "-c", str(settings.git_concurrency), "-n", f"git-{os.getpid()}@%h"]]


def beat_command(settings: Settings) -> list[str]:
    return [PY, "-m", "celery", "-A", "workers.main", "beat", "--loglevel", "INFO",
            "--schedule", str(settings.data_dir / "celerybeat-schedule")]


def supervise(commands: Sequence[list[str]]) -> int:
    """Run processes together; stop them all on Ctrl-C/SIGTERM or when any one exits."""
    procs = [subprocess.Popen(cmd) for cmd in commands]
    stopping = False

    def _stop(signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    code = 0
    while not stopping:
        for proc in procs:
            if proc.poll() is not None:
                code = proc.returncode or 1
                stopping = True
        time.sleep(0.2)
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.time() + 30
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            proc.kill()
    return code


def cmd_migrate(settings: Settings, _args) -> int:
    ctx = Context.create(settings)
    upgrade(ctx.db, settings.data_dir / "locks")
    print("database is up to date")
    return 0


def cmd_run(settings: Settings, _args) -> int:
    cmd_migrate(settings, _args)
    print(f"Strongroom on {settings.base_url} (data in {settings.data_dir}); Ctrl-C stops everything")
    return supervise([web_command(settings), *worker_commands(settings), beat_command(settings)])


def cmd_web(settings: Settings, _args) -> int:
    return supervise([web_command(settings)])


def cmd_worker(settings: Settings, _args) -> int:
    return supervise(worker_commands(settings))


def cmd_beat(settings: Settings, _args) -> int:
    return supervise([beat_command(settings)])


def cmd_sandbox(settings: Settings, args) -> int:
    cmd = [PY, "-m", "sandbox", "--addon-url", args.addon_url or settings.base_url,
           "--root", str(settings.data_dir / "sandbox"), "--port-web", str(args.port_web),
           "--port-api", str(args.port_api)]
    if args.demo_pushes:
        cmd += ["--demo-pushes", str(args.demo_pushes)]
    return supervise([cmd])


def cmd_rotate_secrets(settings: Settings, _args) -> int:
    from .secrets_rotation import rotate_all

    count = rotate_all(Context.create(settings))
    print(f"re-encrypted {count} stored secrets under the current key")
    return 0


def cmd_api_key(settings: Settings, args) -> int:
    from .operators import create_operator_key, list_operator_keys, revoke_operator_key

    ctx = Context.create(settings)
    upgrade(ctx.db, settings.data_dir / "locks")
    if args.action == "create":
        issued = create_operator_key(ctx, args.workspace, args.label or "")
        print(f"operator key {issued.id} for workspace {issued.workspace_slug} (shown once, store it now):")
        print(issued.key)
    elif args.action == "revoke":
        revoke_operator_key(ctx, args.id)
        print(f"revoked {args.id}")
    else:
        for row in list_operator_keys(ctx, args.workspace):
            state = "revoked" if row["revoked_at"] else "active"
            print(f"{row['id']}  {row['workspace']}  {state}  {row['label']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="strongroom", description="Backups for Bitbucket Cloud.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="web + worker + beat in one command (stops all on Ctrl-C)").set_defaults(fn=cmd_run)
    sub.add_parser("web", help="the web app under gunicorn").set_defaults(fn=cmd_web)
    sub.add_parser("worker", help="the Celery workers (default and git queues)").set_defaults(fn=cmd_worker)
    sub.add_parser("beat", help="the Celery beat scheduler (run exactly one)").set_defaults(fn=cmd_beat)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(fn=cmd_migrate)
    sub.add_parser("rotate-secrets", help="re-encrypt stored secrets under the first "
                   "STRONGROOM_SECRET_KEY").set_defaults(fn=cmd_rotate_secrets)
    keys = sub.add_parser("api-key", help="operator keys for /api/v1 and the standalone panel")
    key_sub = keys.add_subparsers(dest="action", required=True)
    create = key_sub.add_parser("create", help="print a new operator key (shown once, stored hashed)")
    create.add_argument("--workspace", required=True, help="workspace slug or {uuid}")
    create.add_argument("--label", default="")
    revoke = key_sub.add_parser("revoke", help="revoke an operator key")
    revoke.add_argument("id")
    listing = key_sub.add_parser("list", help="list operator keys (never the keys themselves)")
    listing.add_argument("--workspace")
    keys.set_defaults(fn=cmd_api_key)
    sb = sub.add_parser("sandbox", help="a simulated Bitbucket workspace that installs this add-on")
    sb.add_argument("--addon-url", help="the add-on's base URL (default STRONGROOM_BASE_URL)")
    sb.add_argument("--demo-pushes", type=float, help="push a commit every N seconds")
    sb.add_argument("--port-web", type=int, default=7990, help="the simulated bitbucket.org origin")
    sb.add_argument("--port-api", type=int, default=7991, help="the simulated api.bitbucket.org origin")
    sb.set_defaults(fn=cmd_sandbox)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.fn(Settings.from_env(), args)


if __name__ == "__main__":
    sys.exit(main())
