"""The audit log: who did what, when (restores, recoveries, exports, drills, token and scope changes).

Entries are written in the same transaction as the change they describe, so a change is never
recorded without its entry or the other way round. They are never edited or deleted.

The offline export has no database: it appends a line to ``<data dir>/audit/offline-exports.jsonl``
instead, and the service imports each line once (the line's id becomes the entry's primary key, so
concurrent importers cannot add it twice). The service only reads that file.
"""
from __future__ import annotations

import json
import logging
import os
import pwd
import re
import socket
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .context import Context
from .errors import InvalidInput
from .store.models import AuditEntry, Tenant, new_id
from .vault.journal import append_json_line, read_lines

log = logging.getLogger(__name__)

ACTIONS = ("restore", "recovery", "export", "drill", "access_token.create", "access_token.revoke",
           "scope.mode", "scope.repository")
SYSTEM_ACTOR = "strongroom"
OFFLINE_LOG = Path("audit") / "offline-exports.jsonl"
OFFLINE_FORMAT = 1
OFFLINE_KINDS = ("repository", "bundle")
_OFFLINE_ID = re.compile(r"^l[0-9a-f]{24}$")  # what new_id("l") makes, like every audit entry id
_ID_BATCH = 500  # ids per IN (...) query, well under every backend's parameter limit
_warned: set[tuple[str, bytes]] = set()  # malformed lines already reported by this process


def record(s: Session, tenant_id: str, actor: str, action: str, target: str, details: dict | None = None, *,
           entry_id: str | None = None, at: datetime | None = None) -> None:
    """Add one entry to the tenant's audit log (inside the caller's transaction)."""
    if action not in ACTIONS:
        raise InvalidInput(f"unknown audit action {action!r}")
    given = {key: value for key, value in (("id", entry_id), ("at", at)) if value is not None}
    s.add(AuditEntry(tenant_id=tenant_id, actor=(actor or SYSTEM_ACTOR)[:255], action=action,
                     target=(target or "")[:512], details_json=json.dumps(details or {}, sort_keys=True,
                                                                          default=str), **given))


def entry_view(row: AuditEntry) -> dict:
    """An entry as the API shows it."""
    return {"id": row.id, "at": row.at.isoformat().replace("+00:00", "Z"), "actor": row.actor,
            "action": row.action, "target": row.target, "details": json.loads(row.details_json or "{}")}


def list_entries(s: Session, tenant_id: str, *, action: str | None, page: int, pagelen: int) -> tuple[list[dict], int]:
    """One page of the tenant's entries, newest first (optionally of one action)."""
    if action is not None and action not in ACTIONS:
        raise InvalidInput(f"action must be one of {', '.join(ACTIONS)}")
    cond = [AuditEntry.tenant_id == tenant_id]
    if action:
        cond.append(AuditEntry.action == action)
    total = s.scalar(select(func.count()).select_from(AuditEntry).where(*cond))
    rows = s.scalars(select(AuditEntry).where(*cond).order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
                     .offset((page - 1) * pagelen).limit(pagelen)).all()
    return [entry_view(r) for r in rows], total


def audit_log(ctx: Context, tenant_id: str, *, action: str | None, page: int, pagelen: int) -> tuple[list[dict], int]:
    """One page of the tenant's audit log, newest first (for the API and the panel), offline exports included."""
    import_offline_exports_quietly(ctx)
    with ctx.db.session() as s:
        return list_entries(s, tenant_id, action=action, page=page, pagelen=pagelen)


# --- offline exports: written to a file by the offline export, imported by the service ---------------

def offline_log_path(data_dir: Path) -> Path:
    """Where offline exports are recorded: an append-only JSON-lines file inside the data directory."""
    return Path(data_dir) / OFFLINE_LOG


def offline_operator() -> dict[str, str]:
    """Who runs an offline export: all an offline operator can be identified by is the OS user and host.
    The user is the process's uid as the OS names it, not $USER/$LOGNAME, which anyone can set."""
    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # a uid without a passwd entry (containers): the uid is all there is
        user = f"uid:{os.getuid()}"
    return {"user": user, "host": socket.gethostname()}


def offline_export_line(workspace: Mapping[str, Any], repository: Mapping[str, Any], snapshot_id: str, refs: int,
                        kind: str, destination: Path, *, now: datetime | None = None) -> dict[str, Any]:
    """One offline export as a line of the offline log: names, ids and a path, never a secret."""
    moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return {"format": OFFLINE_FORMAT, "id": new_id("l"), "action": "export",
            "at": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"), "who": offline_operator(),
            "workspace": {"uuid": str(workspace.get("uuid", "")), "slug": str(workspace.get("slug", ""))},
            "repository": {"uuid": str(repository.get("uuid", "")), "slug": str(repository.get("slug", "")),
                           "full_name": str(repository.get("full_name", ""))},
            "snapshot": snapshot_id, "refs": refs, "destination": {"kind": kind, "path": str(destination)}}


def append_offline(data_dir: Path, line: Mapping[str, Any]) -> Path:
    """Append ``line`` to the offline log, fsynced; raises ``OSError`` if the data directory is read-only."""
    path = offline_log_path(data_dir)
    append_json_line(path, line)
    return path


@dataclass(frozen=True)
class OfflineExport:
    """A well-formed line of the offline log, as the audit entry it becomes."""

    id: str
    at: datetime
    workspace_uuid: str
    actor: str
    target: str
    details: dict


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{key!r} must be a non-empty string")
    return value


def parse_offline_line(data: Any) -> OfflineExport:
    """Check one decoded line of the offline log; ``InvalidInput`` says what is wrong with it."""
    if not isinstance(data, dict) or data.get("format") != OFFLINE_FORMAT or data.get("action") != "export":
        raise InvalidInput("not a format-1 export line")
    line_id = _text(data, "id")
    if not _OFFLINE_ID.match(line_id):
        raise InvalidInput(f"malformed id {line_id!r}")
    try:
        at = datetime.fromisoformat(_text(data, "at").replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidInput("malformed time") from exc
    if at.tzinfo is None:
        raise InvalidInput("a time without a UTC offset")
    who, workspace, repository, dest = (data.get(k) for k in ("who", "workspace", "repository", "destination"))
    if not all(isinstance(part, dict) for part in (who, workspace, repository, dest)):
        raise InvalidInput("who, workspace, repository and destination must be objects")
    if dest.get("kind") not in OFFLINE_KINDS or not isinstance(data.get("refs"), int):
        raise InvalidInput("malformed destination or refs")
    user, host = _text(who, "user"), _text(who, "host")
    target = repository.get("full_name") or f"{workspace.get('slug', '')}/{repository.get('slug', '')}"
    details = {"offline": True, "snapshot": _text(data, "snapshot"), "format": dest["kind"],
               "destination": _text(dest, "path"), "refs": data["refs"], "repository": _text(repository, "uuid"),
               "user": user, "host": host}
    return OfflineExport(line_id, at.astimezone(timezone.utc), _text(workspace, "uuid"), f"offline:{user}@{host}",
                         str(target), details)


def read_offline_log(path: Path) -> list[OfflineExport]:
    """Every well-formed line of the offline log; a malformed one is skipped with a warning (once a process)."""
    found = []
    for number, raw in enumerate(read_lines(path), 1):
        if not raw.strip():
            continue
        try:
            found.append(parse_offline_line(json.loads(raw)))
        except (ValueError, RecursionError, InvalidInput) as exc:  # json's errors are ValueErrors
            if (str(path), raw) not in _warned:
                _warned.add((str(path), raw))
                log.warning("offline audit log %s: line %d skipped (%s)", path, number, exc)
    return found


def _bare_uuid(value: str) -> str:
    return value.strip().strip("{}").lower()


def _imported_ids(s: Session, ids: list[str]) -> set[str]:
    """Which of ``ids`` are already audit entries."""
    found: set[str] = set()
    for start in range(0, len(ids), _ID_BATCH):
        found.update(s.scalars(select(AuditEntry.id).where(AuditEntry.id.in_(ids[start:start + _ID_BATCH]))))
    return found


def _import_one(ctx: Context, tenant_id: str, line: OfflineExport) -> bool:
    """Add one line as an entry in its own transaction; False if another importer already did."""
    try:
        with ctx.db.session() as s:
            record(s, tenant_id, line.actor, "export", line.target, line.details, entry_id=line.id, at=line.at)
    except IntegrityError:  # the primary key: the same line was imported concurrently
        return False
    return True


def import_offline_exports(ctx: Context) -> int:
    """Copy offline exports into the audit log, each once. A line whose workspace has no tenant (yet) stays
    in the file and is imported by a later run. Returns how many entries were added."""
    lines = read_offline_log(offline_log_path(ctx.settings.data_dir))
    if not lines:
        return 0
    with ctx.db.session() as s:
        tenants = {_bare_uuid(uuid): tid for tid, uuid in s.execute(select(Tenant.id, Tenant.workspace_uuid))}
        done = _imported_ids(s, [line.id for line in lines])
    added = 0
    for line in lines:
        tenant_id = tenants.get(_bare_uuid(line.workspace_uuid))
        if line.id not in done and tenant_id is not None:
            added += _import_one(ctx, tenant_id, line)
            done.add(line.id)
    return added


def import_offline_exports_quietly(ctx: Context) -> int:
    """``import_offline_exports`` for callers that must go on regardless (listing, janitor): errors are logged."""
    try:
        return import_offline_exports(ctx)
    except Exception:  # an unreadable file or a busy database must not fail the caller; the next run retries
        log.exception("could not import offline exports into the audit log; a later run will retry")
        return 0
