"""The wiring of one deployment: settings, database, secrets, vault, locks and host clients."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Callable

from .config import Settings
from .errors import CredentialRejected, PermanentError
from .host.client import READ_SCOPES, ConnectCredentials, HostClient, MemoryTokenCache, ScopedCredentials
from .host.credentials import CredentialUnavailable, ForgeSystemCredentials, token_credentials
from .locks import RepoLocks, make_locks
from .store import Database, SecretBox
from .store.models import Installation
from .store.tokens import InstallationTokenCache
from .vault.mirror import Vault

HostFactory = Callable[["Context", Installation], HostClient]
FORGE_TOKEN_MARGIN_SECONDS = 120  # never start work with a system token about to expire


def _connect_client(ctx: "Context", installation: Installation) -> HostClient:
    """Connect: the shared secret signs JWTs exchanged for read-only access tokens (cached encrypted).

    The installation is granted write and admin scopes for restores; everyday tokens ask for
    ``repository`` only, so a leaked or cached token can never write (restores narrow their own)."""
    secret = ctx.box.decrypt(installation.secret_enc or "")
    creds = ConnectCredentials(app_key=installation.app_key or ctx.settings.app_key,
                               client_key=installation.client_key or "", shared_secret=secret,
                               base_url=installation.base_url, base_api_url=installation.base_api_url)
    cache = InstallationTokenCache(ctx.db, ctx.box, installation.id)
    return HostClient(ScopedCredentials(creds, READ_SCOPES), token_cache=cache)


def _token_client(ctx: "Context", installation: Installation) -> HostClient:
    """Token mode: the operator's access token or API token, kept encrypted in ``secret_enc``."""
    details = json.loads(installation.details_json or "{}")
    creds = token_credentials(details.get("credential", ""), ctx.box.decrypt(installation.secret_enc or ""),
                              email=details.get("email"), base_url=installation.base_url,
                              base_api_url=installation.base_api_url)
    return HostClient(creds, token_cache=MemoryTokenCache())


def _forge_client(ctx: "Context", installation: Installation) -> HostClient:
    """Forge: the newest app system token a Forge call brought; without one, work waits (transient)."""
    expires = installation.token_expires_at or 0.0
    if not installation.token_enc or expires - FORGE_TOKEN_MARGIN_SECONDS <= time.time():
        last = installation.last_contact_at.timestamp() if installation.last_contact_at else 0.0
        silence = ctx.settings.forge_tick_interval_seconds * ctx.settings.forge_silent_ticks
        if time.time() - last > silence:  # no tick for many intervals: treat as uninstalled, stop waiting
            raise CredentialRejected("Forge has not called for a long time and no system token is left")
        raise CredentialUnavailable("waiting for a fresh Forge system token (the next scheduled tick brings one)")
    creds = ForgeSystemCredentials(ctx.box.decrypt(installation.token_enc), installation.base_url,
                                   installation.base_api_url)
    return HostClient(creds, token_cache=MemoryTokenCache())


# One builder per install path: the engine asks for "the host client" and never knows which it got.
HOST_CLIENTS: dict[str, HostFactory] = {"connect": _connect_client, "token": _token_client, "forge": _forge_client}


def default_host_factory(ctx: "Context", installation: Installation) -> HostClient:
    """Build the host client for an installation from its stored (encrypted) credentials."""
    build = HOST_CLIENTS.get(installation.path)
    if build is None:
        raise PermanentError(f"no host client for install path {installation.path!r}")
    return build(ctx, installation)


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
