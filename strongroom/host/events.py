"""Repository events, independent of how they were delivered.

Connect webhooks (the ``data`` of the wrapped body), token-mode repository/workspace webhooks
(the unwrapped body) and, later, Forge events all become a :class:`RepositoryEvent`. The backup
reacts to *which repository* changed; payload details are never used to rebuild history.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..connect.payloads import normalize_uuid
from ..errors import InvalidInput

SUPPORTED_EVENTS = (
    "repo:push",
    "repo:created",
    "repo:imported",
    "repo:updated",
    "repo:transfer",
    "repo:deleted",
    "repo:fork",
)

# Bitbucket ref types: "branch"/"tag" for git; "named_branch"/"annotated_tag" appear in older payloads.
_REF_PREFIXES = {
    "branch": "refs/heads/",
    "named_branch": "refs/heads/",
    "tag": "refs/tags/",
    "annotated_tag": "refs/tags/",
}
_HASH_RE = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")  # SHA-1 or SHA-256 object names
_SLUG_RE = re.compile(r"[A-Za-z0-9_.-]{1,128}")
# git check-ref-format: no control characters, space, ~ ^ : ? * [ \, no "..", no "@{", no "//".
_BAD_REF_RE = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//|/\.|\.lock(?:/|$)")


@dataclass(frozen=True)
class RepoRef:
    """Which repository an event is about (uuids normalised to ``{...}``)."""

    uuid: str
    slug: str | None
    name: str | None
    full_name: str | None
    workspace_uuid: str | None
    workspace_slug: str | None


@dataclass(frozen=True)
class RefChange:
    """One ref moved by a push; ``old``/``new`` are None when the ref was created/deleted."""

    ref: str
    old: str | None
    new: str | None
    forced: bool
    created: bool
    closed: bool


@dataclass(frozen=True)
class RepositoryEvent:
    """A format-independent repository event."""

    key: str
    repository: RepoRef
    changes: tuple[RefChange, ...] = ()
    previous_full_name: str | None = None


def parse_repository_event(event_key: str, data: dict) -> RepositoryEvent:
    """Parse an event payload (the unwrapped one) into a :class:`RepositoryEvent`.

    Keys outside ``SUPPORTED_EVENTS`` (pull request, issue, commit status, ...) still carry a
    ``repository`` and are returned with just that. For ``repo:fork`` the event's repository is
    the new fork (``data["fork"]``): that is the repository which now exists and may need a backup.
    """
    if not isinstance(event_key, str) or not event_key:
        raise InvalidInput("event key must be a non-empty string")
    if not isinstance(data, dict):
        raise InvalidInput("event payload must be an object")
    if event_key == "repo:fork":
        return RepositoryEvent(key=event_key, repository=parse_repo_ref(data.get("fork"), "fork"))
    repository = parse_repo_ref(data.get("repository"))
    if event_key == "repo:push":
        return RepositoryEvent(key=event_key, repository=repository, changes=_push_changes(data))
    if event_key == "repo:updated":
        previous = _renamed_from(data.get("changes"), repository)
        return RepositoryEvent(key=event_key, repository=repository, previous_full_name=previous)
    if event_key == "repo:transfer":
        previous = _transferred_from(data, repository)
        return RepositoryEvent(key=event_key, repository=repository, previous_full_name=previous)
    return RepositoryEvent(key=event_key, repository=repository)


def parse_repo_ref(repo: Any, where: str = "repository") -> RepoRef:
    """Build a :class:`RepoRef` from a Bitbucket repository object (needs at least ``uuid``)."""
    if not isinstance(repo, dict) or not isinstance(repo.get("uuid"), str):
        raise InvalidInput(f"event payload has no {where}.uuid")
    full_name = _optional_str(repo, "full_name", where)
    ws_part, _, repo_part = (full_name or "").partition("/")
    workspace = repo.get("workspace") if isinstance(repo.get("workspace"), dict) else {}
    owner = repo.get("owner") if isinstance(repo.get("owner"), dict) else {}
    slug = _optional_str(repo, "slug", where) or repo_part or None
    ws_slug = _optional_str(workspace, "slug", where) or ws_part or _optional_str(owner, "username", where)
    ws_uuid = _optional_str(workspace, "uuid", where) or _optional_str(owner, "uuid", where)
    return RepoRef(
        uuid=normalize_uuid(repo["uuid"]),
        slug=_checked_slug(slug, f"{where}.slug"),
        name=_optional_str(repo, "name", where),
        full_name=full_name,
        workspace_uuid=normalize_uuid(ws_uuid) if ws_uuid else None,
        workspace_slug=_checked_slug(ws_slug, f"{where}.workspace.slug"),
    )


def _push_changes(data: dict) -> tuple[RefChange, ...]:
    push = data.get("push")
    changes = push.get("changes") if isinstance(push, dict) else None
    if not isinstance(changes, list):
        raise InvalidInput("repo:push payload has no push.changes list")
    parsed = (_ref_change(change) for change in changes)
    return tuple(change for change in parsed if change is not None)


def _ref_change(change: Any) -> RefChange | None:
    if not isinstance(change, dict):
        raise InvalidInput("push change must be an object")
    old, new = _ref_side(change.get("old"), "old"), _ref_side(change.get("new"), "new")
    if old is None and new is None:
        raise InvalidInput("push change has neither old nor new")
    ref = (new or old)[0]
    if ref is None:  # a ref kind git backups do not track (e.g. a Mercurial bookmark)
        return None
    return RefChange(
        ref=ref,
        old=old[1] if old else None,
        new=new[1] if new else None,
        forced=_flag(change, "forced"),
        created=_flag(change, "created") or old is None,
        closed=_flag(change, "closed") or new is None,
    )


def _ref_side(side: Any, where: str) -> tuple[str | None, str] | None:
    if side is None:
        return None
    if not isinstance(side, dict):
        raise InvalidInput(f"push change {where} must be an object or null")
    name, kind, target = side.get("name"), side.get("type"), side.get("target")
    commit = target.get("hash") if isinstance(target, dict) else None
    if not isinstance(name, str) or not name or not isinstance(kind, str):
        raise InvalidInput(f"push change {where} needs a type and a name")
    if not isinstance(commit, str) or not _HASH_RE.fullmatch(commit.lower()):
        raise InvalidInput(f"push change {where}.target.hash is not a full object name")
    prefix = _REF_PREFIXES.get(kind)
    return (_checked_ref(prefix + name) if prefix else None), commit.lower()


def _checked_ref(ref: str) -> str:
    # Ref names end up as git arguments later; refuse anything git itself would refuse.
    short = ref.split("/", 2)[2]
    if _BAD_REF_RE.search(ref) or short.startswith(("-", "/", ".")) or ref.endswith(("/", ".")):
        raise InvalidInput(f"invalid ref name {ref!r}"[:200])
    return ref


def _flag(change: dict, name: str) -> bool:
    value = change.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidInput(f"push change {name} must be a boolean")
    return value


def _renamed_from(changes: Any, repository: RepoRef) -> str | None:
    if not isinstance(changes, dict):
        return None
    old_full = _old_value(changes, "full_name")
    if old_full:
        return old_full
    old_slug = _old_value(changes, "slug")
    if old_slug and repository.workspace_slug:
        return f"{repository.workspace_slug}/{old_slug}"
    return None


def _transferred_from(data: dict, repository: RepoRef) -> str | None:
    # The key naming the previous owner is not pinned down by a capture (reference §5.5):
    # the event-payloads page has used both names over time.
    previous = data.get("previous_workspace") or data.get("previous_owner")
    if not isinstance(previous, dict) or not repository.slug:
        return None
    slug = previous.get("slug") or previous.get("username")
    if not isinstance(slug, str) or not slug:
        return None
    return f"{_checked_slug(slug, 'previous workspace slug')}/{repository.slug}"


def _old_value(changes: dict, name: str) -> str | None:
    change = changes.get(name)
    old = change.get("old") if isinstance(change, dict) else None
    return old if isinstance(old, str) and old else None


def _optional_str(obj: dict, name: str, where: str) -> str | None:
    value = obj.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"{where}.{name} must be a string")
    return value or None


def _checked_slug(value: str | None, where: str) -> str | None:
    if value is None:
        return None
    if not _SLUG_RE.fullmatch(value) or value in (".", ".."):
        raise InvalidInput(f"{where} is not a valid slug")
    return value
