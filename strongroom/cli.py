"""The `strongroom` command. Process-starting commands launch the fronts as subprocesses by name,
so this library never imports the web or worker fronts."""
from __future__ import annotations

import argparse
import json
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


def enqueue(settings: Settings, action: str, ident: str) -> bool:
    """Ask the workers to start recorded work now (by task name, in a subprocess); False if that failed."""
    env = {**os.environ, "STRONGROOM_DATA_DIR": str(settings.data_dir)}
    return subprocess.run([PY, "-m", "workers.send", action, ident], env=env).returncode == 0


def _read_secret_file(path: str) -> str:
    """Secrets come from files, never argv: the first line, stripped."""
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.readline().strip()
    except OSError as exc:
        raise SystemExit(f"error: cannot read {path}: {exc.strerror}") from None


def _expiry(value: str | None) -> "datetime | None":
    """``--expires-on YYYY-MM-DD`` as midnight UTC."""
    from datetime import datetime, timezone

    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=timezone.utc)
    except ValueError:
        raise SystemExit("error: --expires-on must be a date like 2027-01-31") from None


def cmd_connect_workspace(settings: Settings, args) -> int:
    from .errors import StrongroomError
    from .tokenmode import TokenCredential, connect_workspace

    if bool(args.access_token_file) == bool(args.api_token_file):
        raise SystemExit("error: give exactly one of --access-token-file and --api-token-file")
    if args.api_token_file and not args.email:
        raise SystemExit("error: --api-token-file needs --email (the token owner's Atlassian account email)")
    kind, path = ("access_token", args.access_token_file) if args.access_token_file else ("api_token", args.api_token_file)
    credential = TokenCredential(kind, _read_secret_file(path), email=args.email, api_base_url=args.api_base_url,
                                 base_url=args.base_url)
    ctx = Context.create(settings)
    upgrade(ctx.db, settings.data_dir / "locks")
    try:
        result = connect_workspace(ctx, args.workspace, credential, expires_at=_expiry(args.expires_on))
    except StrongroomError as exc:
        print(f"error ({exc.code}): {exc.message}", file=sys.stderr)
        return 2
    hooks = ", ".join(h.subject for h in result.hooks)
    print(f"connected {result.workspace_slug}: {result.repositories} repositories, webhooks on {hooks}",
          file=sys.stderr)
    if not enqueue(settings, "run_job", result.job_id):
        print("the first backup is recorded; the workers start it within a minute", file=sys.stderr)
    print(result.workspace_uuid)
    return 0


def cmd_disconnect_workspace(settings: Settings, args) -> int:
    from .errors import StrongroomError
    from .tokenmode import disconnect_workspace

    ctx = Context.create(settings)
    upgrade(ctx.db, settings.data_dir / "locks")
    try:
        left = disconnect_workspace(ctx, args.workspace)
    except StrongroomError as exc:
        print(f"error ({exc.code}): {exc.message}", file=sys.stderr)
        return 2
    for hook in left:
        print(f"warning: could not delete webhook {hook}; remove it in Bitbucket", file=sys.stderr)
    print(f"disconnected {args.workspace}; its backups are kept")
    return 0


def _add_token_mode(sub) -> None:
    connect = sub.add_parser("connect-workspace", help="token mode: back up a workspace with an access token "
                             "or API token (secrets are read from files)")
    connect.add_argument("--workspace", required=True, help="the workspace slug")
    connect.add_argument("--access-token-file", help="file holding a workspace access token")
    connect.add_argument("--api-token-file", help="file holding an Atlassian API token (with --email)")
    connect.add_argument("--email", help="the API token owner's Atlassian account email")
    connect.add_argument("--api-base-url", default="https://api.bitbucket.org", help="Bitbucket's REST origin")
    connect.add_argument("--base-url", help="Bitbucket's web/git origin (default: derived from --api-base-url)")
    connect.add_argument("--expires-on", help="the credential's expiry date (YYYY-MM-DD), shown in the panel")
    connect.set_defaults(fn=cmd_connect_workspace)
    disconnect = sub.add_parser("disconnect-workspace", help="token mode: remove our webhooks; backups stay")
    disconnect.add_argument("--workspace", required=True, help="the workspace slug or {uuid}")
    disconnect.set_defaults(fn=cmd_disconnect_workspace)


def cmd_export(args) -> int:
    """Offline export: reads only --data-dir (no environment, database, broker or Bitbucket) and records the
    export in the data directory's offline audit log (a warning, not a failure, if it is read-only)."""
    from pathlib import Path

    from .errors import StrongroomError
    from .export import export_offline, export_settings, parse_time

    def warn(message: str) -> None:
        print(f"warning: {message}", file=sys.stderr)

    try:
        at = parse_time(args.at) if args.at else None
        entry = export_offline(Path(args.data_dir), args.workspace, args.repository, snapshot_id=args.snapshot,
                               at=at, to=Path(args.to) if args.to else None,
                               bundle=Path(args.bundle) if args.bundle else None, warn=warn)
    except StrongroomError as exc:
        print(f"error ({exc.code}): {exc.message}", file=sys.stderr)
        return 1
    taken = entry.taken_at.isoformat().replace("+00:00", "Z")
    print(f"exported snapshot {entry.id} ({taken}, {len(entry.refs)} refs) to {args.to or args.bundle}")
    settings = export_settings(Path(args.data_dir), args.workspace, args.repository)
    if settings:  # what a person recreating the repository by hand should set (and push first: mainbranch)
        print("repository settings as last recorded: " + json.dumps(settings, sort_keys=True))
    return 0


def _add_export(sub) -> None:
    export = sub.add_parser("export", help="write a snapshot as a bare repository or bundle from the data "
                            "directory alone (works with everything else down)")
    export.add_argument("--data-dir", required=True, help="the Strongroom data directory (or a copy of it)")
    export.add_argument("--workspace", required=True, help="workspace slug or {uuid}")
    export.add_argument("--repository", required=True, help="repository slug or {uuid}")
    when = export.add_mutually_exclusive_group()
    when.add_argument("--snapshot", help="a snapshot id (default: the newest)")
    when.add_argument("--at", help="the newest snapshot at or before this ISO 8601 time (UTC if no offset)")
    dest = export.add_mutually_exclusive_group(required=True)
    dest.add_argument("--to", help="a new directory: a plain bare repository with exactly the snapshot's refs")
    dest.add_argument("--bundle", help="a file: a verified git bundle of the snapshot's refs")
    export.set_defaults(fn=cmd_export, offline=True)


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
    _add_token_mode(sub)
    _add_export(sub)
    sb = sub.add_parser("sandbox", help="a simulated Bitbucket workspace that installs this add-on")
    sb.add_argument("--addon-url", help="the add-on's base URL (default STRONGROOM_BASE_URL)")
    sb.add_argument("--demo-pushes", type=float, help="push a commit every N seconds")
    sb.add_argument("--port-web", type=int, default=7990, help="the simulated bitbucket.org origin")
    sb.add_argument("--port-api", type=int, default=7991, help="the simulated api.bitbucket.org origin")
    sb.set_defaults(fn=cmd_sandbox)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "offline", False):  # reads nothing but its arguments: no environment, no data dir setup
        return args.fn(args)
    return args.fn(Settings.from_env(), args)


if __name__ == "__main__":
    sys.exit(main())
