"""Settings: one frozen object built once from the environment and passed in explicitly."""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

from .errors import InvalidInput

DEFAULT_ALLOWED_HOSTS = ("https://bitbucket.org", "https://api.bitbucket.org")
DEFAULT_FORGE_JWKS_URL = "https://forge.cdn.prod.atlassian-dev.net/.well-known/jwks.json"
SECRET_KEY_FILE = "secret_key"


@dataclass(frozen=True)
class Settings:
    """Everything configurable about one Strongroom deployment (INTERFACE.md §1)."""

    data_dir: Path
    port: int = 8000
    base_url: str = ""
    app_key: str = "strongroom-backup"
    database_url: str = ""
    redis_url: str | None = None
    secret_keys: tuple[str, ...] = field(default=(), repr=False)
    allowed_hosts: tuple[str, ...] = DEFAULT_ALLOWED_HOSTS
    app_secret: str | None = field(default=None, repr=False)
    sweep_interval_seconds: int = 86400
    maintenance_interval_seconds: int = 86400
    outbox_interval_seconds: int = 15
    git_concurrency: int = 2
    max_body_bytes: int = 1024 * 1024
    lock_lease_seconds: int = 60
    git_timeout_seconds: int = 3600
    queue_prefix: str = ""
    forge_app_id: str | None = None
    forge_jwks_url: str = DEFAULT_FORGE_JWKS_URL
    forge_tick_interval_seconds: int = 300  # the manifest's scheduledTrigger interval (fiveMinute)
    forge_silent_ticks: int = 6  # intervals without a Forge call before a refusal means "uninstalled"
    drill_interval_seconds: int = 604800  # verification drills: each repository proven restorable weekly

    @property
    def secret_key(self) -> str:
        """The current secret key (the first of ``secret_keys``)."""
        return self.secret_keys[0]

    @property
    def embedded(self) -> bool:
        """True when no Redis is configured (embedded broker and local locks)."""
        return not self.redis_url

    @property
    def vault_root(self) -> Path:
        return self.data_dir / "vaults"

    def with_overrides(self, **changes: object) -> "Settings":
        """A copy with some fields changed (for tests)."""
        return replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """Read the environment once; generate and keep a secret key in the data dir if none is set."""
        env = os.environ if environ is None else environ
        port = _int(env, "PORT", 8000)
        data_dir = Path(env.get("STRONGROOM_DATA_DIR") or "./var").expanduser().resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        base_url = (env.get("STRONGROOM_BASE_URL") or f"http://localhost:{port}").rstrip("/")
        database_url = env.get("DATABASE_URL") or f"sqlite:///{data_dir / 'strongroom.sqlite3'}"
        if database_url.startswith("postgres://"):  # Heroku-style URL
            database_url = "postgresql://" + database_url[len("postgres://"):]
        if database_url.startswith("postgresql://"):
            database_url = "postgresql+psycopg://" + database_url[len("postgresql://"):]
        raw_keys = env.get("STRONGROOM_SECRET_KEY")
        keys = tuple(k.strip() for k in raw_keys.split(",") if k.strip()) if raw_keys else (
            load_or_create_secret_key(data_dir),)
        hosts = env.get("STRONGROOM_ALLOWED_HOSTS")
        allowed = tuple(h.strip().rstrip("/") for h in hosts.split(",") if h.strip()) if hosts \
            else DEFAULT_ALLOWED_HOSTS
        return cls(
            data_dir=data_dir,
            port=port,
            base_url=base_url,
            app_key=env.get("STRONGROOM_APP_KEY") or "strongroom-backup",
            database_url=database_url,
            redis_url=env.get("REDIS_URL") or None,
            secret_keys=keys,
            allowed_hosts=allowed,
            app_secret=env.get("STRONGROOM_APP_SECRET") or None,
            sweep_interval_seconds=_int(env, "STRONGROOM_SWEEP_INTERVAL", 86400),
            maintenance_interval_seconds=_int(env, "STRONGROOM_MAINTENANCE_INTERVAL", 86400),
            outbox_interval_seconds=_int(env, "STRONGROOM_JANITOR_INTERVAL", 15),
            git_concurrency=_int(env, "STRONGROOM_GIT_CONCURRENCY", 2),
            lock_lease_seconds=_int(env, "STRONGROOM_LOCK_LEASE", 60),
            git_timeout_seconds=_int(env, "STRONGROOM_GIT_TIMEOUT", 3600),
            queue_prefix=env.get("STRONGROOM_QUEUE_PREFIX") or "",
            forge_app_id=env.get("STRONGROOM_FORGE_APP_ID") or None,
            forge_jwks_url=env.get("STRONGROOM_FORGE_JWKS_URL") or DEFAULT_FORGE_JWKS_URL,
            forge_tick_interval_seconds=_int(env, "STRONGROOM_FORGE_TICK_INTERVAL", 300),
            forge_silent_ticks=_int(env, "STRONGROOM_FORGE_SILENT_TICKS", 6),
            drill_interval_seconds=_int(env, "STRONGROOM_DRILL_INTERVAL", 604800),
        )


def load_or_create_secret_key(data_dir: Path) -> str:
    """Return the secret key kept in the data dir, creating it (mode 0600) on first start."""
    path = data_dir / SECRET_KEY_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    key = secrets.token_urlsafe(48)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    try:
        os.link(tmp, path)  # atomic: the first process to start wins
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise InvalidInput(f"{name} must be an integer, not {raw!r}") from exc
