"""Test harness: real processes wired together (sandbox host, Strongroom web, a real Celery worker)."""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

import requests
from werkzeug.serving import make_server

from strongroom.config import Settings

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.1, message: str = "condition"):
    """Poll until ``predicate()`` is truthy; return its value or fail with ``message``."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message} (last: {last!r})")


def sync_settled(ctx, repository_uuid: str) -> bool:
    """True when no sync of the repository is under way or still to come: every requested sync
    generation has been synced (or given up), no webhook event of its workspace waits to be applied
    and no whole-workspace backup of it waits to be planned (either requests another round). The API
    cannot tell this: between two rounds a repository reads "ok" although the next one is requested."""
    from sqlalchemy import func, select

    from strongroom.connect.payloads import normalize_uuid
    from strongroom.store.models import Event, Job, Repository

    with ctx.db.session() as s:
        rows = s.execute(select(Repository.tenant_id, Repository.requested_gen, Repository.synced_gen)
                         .where(Repository.uuid == normalize_uuid(repository_uuid))).all()
        if not rows or any(requested > synced for _, requested, synced in rows):
            return False
        tenants = [tenant for tenant, _, _ in rows]
        events = s.scalar(select(func.count()).select_from(Event).where(
            Event.tenant_id.in_(tenants), Event.processed_at.is_(None)))
        jobs = s.scalar(select(func.count()).select_from(Job).where(
            Job.tenant_id.in_(tenants), Job.kind == "backup_all", Job.started_at.is_(None), Job.error.is_(None)))
        return not events and not jobs


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that reproduces ``settings`` in a subprocess."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRONGROOM_")}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    env.update({
        "STRONGROOM_DATA_DIR": str(settings.data_dir),
        "STRONGROOM_BASE_URL": settings.base_url,
        "STRONGROOM_APP_KEY": settings.app_key,
        "DATABASE_URL": settings.database_url,
        "STRONGROOM_SECRET_KEY": ",".join(settings.secret_keys),
        "STRONGROOM_ALLOWED_HOSTS": ",".join(settings.allowed_hosts),
        "STRONGROOM_GIT_CONCURRENCY": str(settings.git_concurrency),
        "STRONGROOM_JANITOR_INTERVAL": str(settings.outbox_interval_seconds),
        "STRONGROOM_SWEEP_INTERVAL": str(settings.sweep_interval_seconds),
        "STRONGROOM_MAINTENANCE_INTERVAL": str(settings.maintenance_interval_seconds),
        "STRONGROOM_LOCK_LEASE": str(settings.lock_lease_seconds),
        "PORT": str(settings.port),
        "PYTHONUNBUFFERED": "1",
    })
    if settings.redis_url:
        env["REDIS_URL"] = settings.redis_url
    if settings.queue_prefix:
        env["STRONGROOM_QUEUE_PREFIX"] = settings.queue_prefix
    if settings.app_secret:
        env["STRONGROOM_APP_SECRET"] = settings.app_secret
    if settings.forge_app_id:  # the sandbox's fake Forge platform: its app id and signing keys
        env["STRONGROOM_FORGE_APP_ID"] = settings.forge_app_id
        env["STRONGROOM_FORGE_JWKS_URL"] = settings.forge_jwks_url
    return env


def stop_process_group(proc: subprocess.Popen | None, log=None) -> None:
    """SIGTERM a subprocess's whole process group, SIGKILL it if it lingers, close its log."""
    if proc and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    if log is not None:
        log.close()


class WebServer:
    """The Strongroom Flask app on a real loopback HTTP server (threaded)."""

    def __init__(self, app, port: int) -> None:
        import logging

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # keep failure output readable
        self.server = make_server("127.0.0.1", port, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> "WebServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()


@dataclass
class WorkerProcess:
    """A real `celery worker` subprocess against the configured broker."""

    settings: Settings
    log_path: Path
    queues: str = "strongroom,strongroom.git"
    concurrency: int = 2
    proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> "WorkerProcess":
        cmd = [sys.executable, "-m", "celery", "-A", "workers.main", "worker", "--loglevel", "INFO",
               "-Q", self.queues, "-c", str(self.concurrency), "--without-gossip", "--without-mingle",
               "-n", f"test-{secrets.token_hex(3)}@%h"]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=settings_env(self.settings), stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: b" ready." in self.log_path.read_bytes() or self.proc.poll() is not None,
                 timeout, message="the celery worker to be ready")
        if self.proc.poll() is not None:
            raise RuntimeError(f"worker exited: {self.log_path.read_text()[-3000:]}")
        return self

    def child_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def stop(self) -> None:
        stop_process_group(self.proc, getattr(self, "_log", None))


@dataclass
class BeatProcess:
    """The real `celery beat` scheduler subprocess (janitor, sweeps, maintenance)."""

    settings: Settings
    log_path: Path
    proc: subprocess.Popen | None = None

    def start(self) -> "BeatProcess":
        cmd = [sys.executable, "-m", "celery", "-A", "workers.main", "beat", "--loglevel", "INFO",
               "--schedule", str(self.settings.data_dir / "celerybeat-schedule")]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=settings_env(self.settings), stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def stop(self) -> None:
        stop_process_group(self.proc, getattr(self, "_log", None))


@dataclass
class HostSigner:
    """Signs requests to Strongroom the way Bitbucket does (independent: atlassian_jwt + PyJWT)."""

    client_key: str
    shared_secret: str = field(repr=False)

    def token(self, method: str, url_path_and_query: str, lifetime: int = 180) -> str:
        import jwt
        from atlassian_jwt.url_utils import hash_url

        now = int(time.time())
        claims = {"iss": self.client_key, "aud": self.client_key, "iat": now, "exp": now + lifetime,
                  "qsh": hash_url(method, url_path_and_query)}
        return jwt.encode(claims, self.shared_secret, algorithm="HS256")


class ApiClient:
    """Calls Strongroom's /api/v1 with a host-signed JWT per request."""

    def __init__(self, base_url: str, signer: HostSigner) -> None:
        self.base_url, self.signer = base_url.rstrip("/"), signer

    def request(self, method: str, path: str, *, json_body=None, params: str = "", **kw) -> requests.Response:
        # sign the path exactly as it goes on the wire ({uuid} travels as %7Buuid%7D)
        target = quote(path, safe="/-._~") + (f"?{params}" if params else "")
        headers = {"Authorization": f"JWT {self.signer.token(method, target)}"}
        headers.update(kw.pop("headers", {}))
        return requests.request(method, self.base_url + target, json=json_body, headers=headers, timeout=30, **kw)

    def get(self, path: str, params: str = "", **kw) -> requests.Response:
        return self.request("GET", path, params=params, **kw)

    def post(self, path: str, json_body=None, **kw) -> requests.Response:
        return self.request("POST", path, json_body=json_body, **kw)

    def put(self, path: str, json_body=None, **kw) -> requests.Response:
        return self.request("PUT", path, json_body=json_body, **kw)

    def delete(self, path: str, **kw) -> requests.Response:
        return self.request("DELETE", path, **kw)


def git(*args: str, cwd: Path | None = None, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", **(env or {})}
    return subprocess.run(["git", *args], cwd=cwd, env=full_env, capture_output=True, text=True, check=check)


def clone_env(token: str) -> dict[str, str]:
    """Credentials for `git clone` of a Strongroom backup, through the environment (never the URL)."""
    import base64

    basic = base64.b64encode(f"x-token-auth:{token}".encode()).decode()
    return {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}"}


def show_ref(path: Path) -> dict[str, str]:
    out = git("show-ref", cwd=path, check=False).stdout
    refs = {}
    for line in out.splitlines():
        sha, name = line.split(" ", 1)
        if name.startswith(("refs/heads/", "refs/tags/")):
            refs[name] = sha
    return refs


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


__all__ = ["ApiClient", "BeatProcess", "HostSigner", "WebServer", "WorkerProcess", "clone_env", "free_port", "git",
           "json", "origin", "settings_env", "show_ref", "sync_settled", "wait_for"]
