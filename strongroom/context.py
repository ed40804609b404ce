"""The wiring of one deployment: settings, database, secrets, vault, locks and host clients."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .config import Settings
from .errors import PermanentError
from .host.client import ConnectCredentials, HostClient
from .locks import RepoLocks, make_locks
from .store import Database, SecretBox
from .store.models import Installation
from .store.tokens import InstallationTokenCache
from .vault.mirror import Vault

HostFactory = Callable[["Context", Installation], HostClient]


def default_host_factory(ctx: "Context", installation: Installation) -> HostClient:
    """Build the host client for an installation from its stored (encrypted) credentials."""
    if installation.path != "connect":
        raise PermanentError(f"no host client for install path {installation.path!r}")
    secret = ctx.box.decrypt(installation.secret_enc or "")
    creds = ConnectCredentials(app_key=installation.app_key or ctx.settings.app_key,
                               client_key=installation.client_key or "", shared_secret=secret,
                               base_url=installation.base_url, base_api_url=installation.base_api_url)
    cache = InstallationTokenCache(ctx.db, ctx.box, installation.id)
    return HostClient(creds, token_cache=cache)


@dataclass
class Context:
    """Everything a use case needs; built once per process and passed explicitly."""

    settings: Settings
    db: Database
    box: SecretBox
    vault: Vault
    locks: RepoLocks
    host_factory: HostFactory = field(default=default_host_factory)

    @classmethod
    def create(cls, settings: Settings, host_factory: HostFactory | None = None) -> "Context":
        return cls(
            settings=settings,
            db=Database(settings.database_url),
            box=SecretBox(settings.secret_keys),
            vault=Vault(settings.vault_root, git_timeout=settings.git_timeout_seconds),
            locks=make_locks(settings.data_dir, settings.redis_url, settings.lock_lease_seconds,
                             prefix=f"{settings.queue_prefix}strongroom:lock:"),
            host_factory=host_factory or default_host_factory,
        )

    def host_for(self, installation: Installation) -> HostClient:
        return self.host_factory(self, installation)
