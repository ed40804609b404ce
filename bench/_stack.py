"""The benchmark stack, built like production: the sandbox host, Strongroom's web app under gunicorn
(the Procfile's gthread server) and the real Celery workers of `strongroom worker` (a default pool and
a git pool). SQLite and the embedded filesystem broker by default; PostgreSQL and Redis when
DATABASE_URL / REDIS_URL are set (a fresh database and a fresh key prefix per run, removed afterwards).
"""
from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import harness  # tests/harness.py (bench/__init__.py puts tests/ on the path)
from harness import BeatProcess, HostSigner, WorkerProcess, free_port, settings_env, wait_for

from strongroom.config import Settings
from strongroom.context import Context
from strongroom.store.migrate import upgrade

from . import _machine
from ._api import Api, BenchWorkspace, basic_auth_env
from ._gitgen import generate_history
from ._hostcount import GitRequestCounter
from ._processes import GUNICORN_FLAGS, ROOT, GunicornServer, cold_stop, in_parallel

__all__ = ["Api", "BenchStack", "BenchWorkspace", "GunicornServer", "ROOT", "basic_auth_env", "free_port",
           "settings_env", "wait_for"]


class BenchStack:
    """Sandbox + Strongroom web + workers in a temporary directory; use as a context manager."""

    def __init__(self, name: str, *, server: str = "gunicorn", workers: bool = True, beat: bool = False,
                 git_concurrency: int = 2, keep: bool = False) -> None:
        if server not in ("gunicorn", "werkzeug"):
            raise ValueError("server must be gunicorn or werkzeug")
        self.name, self.server_kind, self.want_workers, self.want_beat = name, server, workers, beat
        self.git_concurrency, self.keep = git_concurrency, keep
        self.tmp = Path(tempfile.mkdtemp(prefix=f"strongroom-bench-{name}-"))
        self.processes: list = []
        self._pg_database: str | None = None

    # --- lifecycle ------------------------------------------------------------------------
    def __enter__(self) -> "BenchStack":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> "BenchStack":
        """Start the sandbox, create the database, then the web server and the workers in parallel."""
        from sandbox import Sandbox

        database_url = self._database_url()
        redis_url = os.environ.get("REDIS_URL") or None
        self.sandbox = Sandbox(self.tmp / "bitbucket").start()
        self.git_counter = GitRequestCounter(self.sandbox._web._server.app)
        # Bench-only instrumentation: the werkzeug server calls `server.app` per request.
        self.sandbox._web._server.app = self.git_counter
        port = free_port()
        self.settings = Settings(
            data_dir=self.tmp / "strongroom", port=port, base_url=f"http://127.0.0.1:{port}",
            database_url=database_url, redis_url=redis_url, secret_keys=(secrets.token_urlsafe(32),),
            allowed_hosts=(self.sandbox.web_url, self.sandbox.api_url), git_concurrency=self.git_concurrency,
            queue_prefix=f"srbench-{secrets.token_hex(4)}:" if redis_url else "")
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.ctx = Context.create(self.settings)
        upgrade(self.ctx.db, self.settings.data_dir / "locks")
        in_parallel([self._start_web, *([self.start_workers] if self.want_workers else [])])
        if self.want_beat:
            self.processes.append(BeatProcess(self.settings, self.tmp / "beat.log").start())
        self.machine = _machine.describe(database_url=database_url, redis_url=redis_url,
                                         server=self.server_description, data_dir=self.tmp)
        return self

    @property
    def server_description(self) -> str:
        """Which web server serves Strongroom, with its flags."""
        if self.server_kind == "gunicorn":
            return "gunicorn " + " ".join(GUNICORN_FLAGS)
        return "werkzeug threaded server (tests/harness.WebServer)"

    def _start_web(self) -> None:
        if self.server_kind == "gunicorn":
            env = settings_env(self.settings)
            self.web = GunicornServer("addon.wsgi:app", self.settings.port, env, self.tmp / "web.log").start()
        else:
            from addon import create_app

            self.web = harness.WebServer(create_app(self.settings, ctx=self.ctx), self.settings.port).start()

    def start_workers(self) -> None:
        """The two pools of `strongroom worker`: default queue (-c 2) and git queue (-c git_concurrency)."""
        self.workers = [
            WorkerProcess(self.settings, self.tmp / "worker-default.log", queues="strongroom", concurrency=2),
            WorkerProcess(self.settings, self.tmp / "worker-git.log", queues="strongroom.git",
                          concurrency=self.git_concurrency),
        ]
        self.processes.extend(self.workers)
        in_parallel([worker.start for worker in self.workers])

    def stop_workers(self) -> None:
        """Stop the Celery workers (e.g. so a load test charges only the web tier)."""
        workers = getattr(self, "workers", [])
        in_parallel([lambda w=worker: cold_stop(w) for worker in workers])
        self.processes = [p for p in self.processes if p not in workers]
        self.workers = []

    def stop(self) -> None:
        """Stop everything and remove the directory, the database and the Redis keys (idempotent)."""
        web, self.web = getattr(self, "web", None), None
        try:
            in_parallel([lambda p=p: cold_stop(p) for p in self.processes] + ([web.stop] if web is not None else []))
        except Exception as exc:  # keep tearing down the rest
            print(f"warning: could not stop a process: {exc}", file=sys.stderr)
        self.processes = []
        if getattr(self, "sandbox", None) is not None:
            self.sandbox.stop()
            self.sandbox = None
        if getattr(self, "ctx", None) is not None:
            self.ctx.db.dispose()
            self._drop_redis_keys()
            self.ctx = None
        self._drop_database()
        if not self.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # --- database and broker --------------------------------------------------------------
    def _database_url(self) -> str:
        base = os.environ.get("DATABASE_URL")
        if not base:
            return f"sqlite:///{self.tmp / 'strongroom.sqlite3'}"
        import psycopg

        base = base.replace("postgres://", "postgresql://", 1).replace("postgresql+psycopg://", "postgresql://", 1)
        self._pg_base = base
        self._pg_database = f"strongroom_bench_{secrets.token_hex(4)}"
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self._pg_database}"')
        parts = urlsplit(base)
        url = urlunsplit((parts.scheme, parts.netloc, f"/{self._pg_database}", parts.query, ""))
        return url.replace("postgresql://", "postgresql+psycopg://", 1)

    def _drop_database(self) -> None:
        if self._pg_database:
            import psycopg

            with psycopg.connect(self._pg_base, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self._pg_database}" WITH (FORCE)')
            self._pg_database = None

    def _drop_redis_keys(self) -> None:
        if not self.settings.redis_url or not self.settings.queue_prefix:
            return
        import redis

        client = redis.Redis.from_url(self.settings.redis_url)
        keys = list(client.scan_iter(f"{self.settings.queue_prefix}*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start:start + 500])
        client.close()

    # --- workspaces and repositories ------------------------------------------------------
    @property
    def base_url(self) -> str:
        """Strongroom's base URL."""
        return self.settings.base_url

    def create_workspace(self, slug: str) -> dict:
        """A workspace on the sandbox host."""
        return self.sandbox.create_workspace(slug, name=f"Bench {slug}")

    def create_repository(self, workspace: str, slug: str, *, history: int, blob_bytes: int = 0) -> dict:
        """A sandbox repository with ``history`` commits on main, generated with git fast-import."""
        repo = self.sandbox.create_repository(workspace, slug, commits=0, deliver=False)
        if history > 0:
            generate_history(self.sandbox.repo_path(workspace, slug), history, blob_bytes=blob_bytes)
            self.sandbox.notify_push(workspace, slug, deliver=False)  # the host's baseline: nothing to announce
        return repo

    def install(self, workspace: str) -> BenchWorkspace:
        """Install Strongroom in the workspace (the real Connect flow through the sandbox)."""
        ws = self.sandbox.workspace(workspace)
        inst = self.sandbox.install(workspace, f"{self.base_url}/atlassian-connect.json")
        signer = HostSigner(inst["client_key"], inst["shared_secret"])
        return BenchWorkspace(ws.slug, ws.uuid, inst["client_key"], inst["shared_secret"],
                              Api(self.base_url, signer))

    def backed_up(self, ws: BenchWorkspace, slugs: list[str]) -> dict[str, dict]:
        """The repositories whose newest snapshot equals the host's live refs right now."""
        views = ws.api.repositories()
        done = {}
        for slug in slugs:
            view = views.get(slug)
            if not view or not view["snapshot_count"]:
                continue
            snap = ws.api.newest_snapshot(view["uuid"])
            if snap and snap["refs"] == self.sandbox.refs(ws.slug, slug):
                done[slug] = view
        return done

    def wait_backed_up(self, ws: BenchWorkspace, slugs: list[str], timeout: float = 600.0,
                       interval: float = 0.25) -> dict[str, dict]:
        """Wait until every repository in ``slugs`` is backed up at the host's live state (polls only
        the ones not yet done, so use it once the host's state is final)."""
        done: dict[str, dict] = {}
        deadline = time.monotonic() + timeout
        while True:
            done.update(self.backed_up(ws, [s for s in slugs if s not in done]))
            if len(done) == len(slugs):
                return done
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s: {sorted(set(slugs) - set(done))} not backed up")
            time.sleep(interval)

    def wait_idle(self, timeout: float = 120.0) -> None:
        """Wait until every recorded event is applied and no repository has a sync requested or running."""
        from sqlalchemy import func, or_, select

        from strongroom.store.models import Event, Repository

        def idle() -> bool:
            with self.ctx.db.session() as s:
                events = s.scalar(select(func.count()).select_from(Event).where(Event.processed_at.is_(None)))
                busy = s.scalar(select(func.count()).select_from(Repository).where(
                    or_(Repository.requested_gen > Repository.synced_gen, Repository.state == "syncing")))
            return events == 0 and busy == 0

        wait_for(idle, timeout, 0.1, message="no pending events or syncs")

    def repository_id(self, ws: BenchWorkspace, slug: str) -> str:
        """Strongroom's internal id of a repository (for calling use cases in-process)."""
        from sqlalchemy import select

        from strongroom.store.models import Repository, Tenant

        with self.ctx.db.session() as s:
            tenant = s.scalars(select(Tenant).where(Tenant.workspace_uuid == ws.uuid)).one()
            return s.scalars(select(Repository.id).where(Repository.tenant_id == tenant.id,
                                                         Repository.slug == slug)).one()

    def origin_url(self, workspace: str, slug: str) -> str:
        """The host's clone URL for a repository (its git http-backend)."""
        return f"{self.sandbox.web_url}/{workspace}/{slug}.git"

    def origin_git_env(self, workspace: str) -> dict[str, str]:
        """Credentials for plain git against the host: an access token of the installation."""
        return basic_auth_env("x-token-auth", self.sandbox.issue_access_token(workspace))

    def backup_url(self, workspace: str, slug: str) -> str:
        """Strongroom's clone URL for the latest backed-up state."""
        return f"{self.base_url}/git/{workspace}/{slug}.git"

