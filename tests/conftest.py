"""Shared fixtures. The integration stack is real: a sandbox Bitbucket (two HTTP origins, git http-backend),
Strongroom's web app on a loopback HTTP server, and a real Celery worker subprocess on the configured
broker (embedded filesystem queue by default; Redis when REDIS_URL is set). The database is SQLite by
default or a fresh PostgreSQL database when DATABASE_URL is set."""
from __future__ import annotations

import dataclasses
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

sys.path.append(str(Path(__file__).parent))  # for harness; after the repo root

from harness import ApiClient, BeatProcess, HostSigner, WebServer, WorkerProcess, free_port  # noqa: E402

from strongroom.config import Settings  # noqa: E402
from strongroom.context import Context  # noqa: E402
from strongroom.store.migrate import upgrade  # noqa: E402


def _pg_admin(url: str):
    import psycopg

    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    """SQLite in a temp dir, or a fresh PostgreSQL database on DATABASE_URL's server."""
    base = os.environ.get("DATABASE_URL")
    if not base:
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'strongroom.sqlite3'}"
        return
    base = base.replace("postgres://", "postgresql://", 1)
    name = f"strongroom_test_{secrets.token_hex(4)}"
    with _pg_admin(base) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(base)
    url = urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))
    yield url.replace("postgresql://", "postgresql+psycopg://", 1)
    with _pg_admin(base) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_url():
    return os.environ.get("REDIS_URL") or None


def make_settings(data_dir: Path, database_url: str, redis_url: str | None, *, port: int | None = None,
                  allowed_hosts: tuple[str, ...] = (), **overrides) -> Settings:
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    values = dict(data_dir=data_dir, port=port, base_url=f"http://127.0.0.1:{port}", database_url=database_url,
                  redis_url=redis_url, secret_keys=(secrets.token_urlsafe(32),),
                  allowed_hosts=allowed_hosts or ("https://bitbucket.org", "https://api.bitbucket.org"),
                  queue_prefix=f"srtest-{secrets.token_hex(4)}:" if redis_url else "",
                  outbox_interval_seconds=2, git_concurrency=2, lock_lease_seconds=10)
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def unit_settings(tmp_path, redis_url) -> Settings:
    """Settings on a throwaway SQLite database (for tests that need no shared services)."""
    return make_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'unit.sqlite3'}", None)


@pytest.fixture
def unit_ctx(unit_settings) -> Context:
    ctx = Context.create(unit_settings)
    upgrade(ctx.db, unit_settings.data_dir / "locks")
    yield ctx
    ctx.db.dispose()


@pytest.fixture
def shared_ctx(unit_settings, database_url) -> Context:
    """A context on the session's database: SQLite, or PostgreSQL when DATABASE_URL is set (for tests of
    concurrency that must hold on both). The database outlives the test: use fresh UUIDs."""
    ctx = Context.create(dataclasses.replace(unit_settings, database_url=database_url))
    upgrade(ctx.db, ctx.settings.data_dir / "locks")
    yield ctx
    ctx.db.dispose()


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory):
    from sandbox import Sandbox

    sb = Sandbox(tmp_path_factory.mktemp("bitbucket"))
    sb.start()
    yield sb
    sb.stop()


@dataclass
class Stack:
    settings: Settings
    ctx: Context
    sandbox: object
    web: WebServer
    worker: WorkerProcess
    beat: BeatProcess

    @property
    def base_url(self) -> str:
        return self.settings.base_url


@pytest.fixture(scope="session")
def stack(tmp_path_factory, database_url, redis_url, sandbox):
    """Sandbox host + Strongroom web + a real Celery worker, shared by the integration tests."""
    data_dir = tmp_path_factory.mktemp("strongroom")
    settings = make_settings(data_dir, database_url, redis_url, allowed_hosts=(sandbox.web_url, sandbox.api_url),
                             forge_app_id=sandbox.forge.app_id, forge_jwks_url=sandbox.forge.jwks_url)
    ctx = Context.create(settings)
    upgrade(ctx.db, settings.data_dir / "locks")
    from addon import create_app

    web = WebServer(create_app(settings, ctx=ctx), settings.port).start()
    worker = WorkerProcess(settings, data_dir / "worker.log").start()
    beat = BeatProcess(settings, data_dir / "beat.log").start()
    yield Stack(settings, ctx, sandbox, web, worker, beat)
    beat.stop()
    worker.stop()
    web.stop()
    ctx.db.dispose()


@dataclass
class InstalledWorkspace:
    slug: str
    uuid: str
    client_key: str
    shared_secret: str
    api: ApiClient
    repos: list


@pytest.fixture
def install_workspace(stack):
    """Factory: a fresh sandbox workspace with ``repos`` repositories, with Strongroom installed."""

    def _install(repos: int = 2, commits: int = 2, slug: str | None = None) -> InstalledWorkspace:
        sb = stack.sandbox
        slug = slug or f"ws-{secrets.token_hex(3)}"
        ws = sb.create_workspace(slug, name=f"Workspace {slug}")
        created = [sb.create_repository(slug, f"repo-{i}", commits=commits) for i in range(repos)]
        inst = sb.install(slug, f"{stack.base_url}/atlassian-connect.json")
        signer = HostSigner(inst["client_key"], inst["shared_secret"])
        return InstalledWorkspace(slug, ws["uuid"], inst["client_key"], inst["shared_secret"],
                                  ApiClient(stack.base_url, signer), created)

    return _install
