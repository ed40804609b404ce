"""The simulated host's state: workspaces, repositories, installations, tokens, deliveries.

Plain records guarded by one registry lock; no I/O happens here.
"""
from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


def new_uuid() -> str:
    """A Bitbucket-style UUID: lower-case, with braces."""
    return "{%s}" % uuid.uuid4()


def utc_now_iso() -> str:
    """ISO 8601 with microseconds and an explicit +00:00 offset, as Bitbucket writes timestamps."""
    return datetime.now(timezone.utc).isoformat()


class _Record:
    """Records read like objects (``rec.client_key``) and like dicts (``rec["client_key"]``)."""

    def __getitem__(self, key: str) -> Any:
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)


@dataclass
class User(_Record):
    """The human account that performs sandbox actions (pushes, repo changes)."""

    uuid: str
    account_id: str
    display_name: str
    nickname: str
    email: str


@dataclass
class Project(_Record):
    key: str
    uuid: str
    name: str
    created_on: str = field(default_factory=utc_now_iso)


@dataclass
class Workspace(_Record):
    uuid: str
    slug: str
    name: str
    actor: User
    projects: dict[str, Project] = field(default_factory=dict)
    created_on: str = field(default_factory=utc_now_iso)
    updated_on: str = field(default_factory=utc_now_iso)

    def default_project(self) -> Project:
        return next(iter(self.projects.values()))


@dataclass
class Repository(_Record):
    uuid: str
    workspace_uuid: str
    slug: str
    name: str
    path: Path
    project_key: str
    description: str = ""
    is_private: bool = True
    language: str = ""
    fork_policy: str = "no_public_forks"
    created_on: str = field(default_factory=utc_now_iso)
    updated_on: str = field(default_factory=utc_now_iso)
    # refs as of the last repo:push notification; the next notification reports the difference
    notified_refs: dict[str, str] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)


@dataclass
class Installation(_Record):
    """One Connect installation of an app into one workspace."""

    client_key: str
    app_key: str
    shared_secret: str = field(repr=False)
    workspace_uuid: str
    workspace: str  # slug at install time, for convenience
    base_url: str
    descriptor: dict
    descriptor_url: str
    scopes: tuple[str, ...]
    state: str = "installing"  # installing -> active -> uninstalled (or failed)
    installed_at: float = field(default_factory=time.time)

    @property
    def active(self) -> bool:
        return self.state == "active"

    @property
    def usable(self) -> bool:
        """May authenticate: active, or mid-install (apps verify credentials during `installed`)."""
        return self.state in ("active", "installing")


@dataclass
class AccessToken(_Record):
    token: str = field(repr=False)
    client_key: str
    workspace_uuid: str
    scopes: tuple[str, ...]
    expires_at: float
    repository_uuid: str | None = None
    revoked: bool = False

    def valid(self, now: float | None = None) -> bool:
        return not self.revoked and (now or time.time()) < self.expires_at


@dataclass
class Delivery(_Record):
    """One webhook event sent (or not) to one subscriber, with every attempt's outcome."""

    event: str
    url: str
    workspace: str
    client_key: str | None
    request_uuid: str
    hook_uuid: str
    body: bytes = field(repr=False)
    status_codes: list[int | None] = field(default_factory=list)
    errors: list[str | None] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    delivered: bool = False
    dropped: str | None = None  # why it was never sent (e.g. payload over 256 KB)
    created_at: float = field(default_factory=time.time)

    @property
    def attempts(self) -> int:
        return len(self.status_codes)

    @property
    def status(self) -> int | None:
        return self.status_codes[-1] if self.status_codes else None

    @property
    def payload(self) -> dict:
        import json
        return json.loads(self.body)
