"""The audit log: who did what, when (restores, recoveries, exports, drills, token and scope changes).

Entries are written in the same transaction as the change they describe, so a change is never
recorded without its entry or the other way round. They are never edited or deleted.
"""
from __future__ import annotations

import json

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .context import Context
from .errors import InvalidInput
from .store.models import AuditEntry

ACTIONS = ("restore", "recovery", "export", "drill", "access_token.create", "access_token.revoke",
           "scope.mode", "scope.repository")
SYSTEM_ACTOR = "strongroom"


def record(s: Session, tenant_id: str, actor: str, action: str, target: str, details: dict | None = None) -> None:
    """Add one entry to the tenant's audit log (inside the caller's transaction)."""
    if action not in ACTIONS:
        raise InvalidInput(f"unknown audit action {action!r}")
    s.add(AuditEntry(tenant_id=tenant_id, actor=(actor or SYSTEM_ACTOR)[:255], action=action,
                     target=(target or "")[:512], details_json=json.dumps(details or {}, sort_keys=True,
                                                                          default=str)))


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
    """One page of the tenant's audit log, newest first (for the API and the panel)."""
    with ctx.db.session() as s:
        return list_entries(s, tenant_id, action=action, page=page, pagelen=pagelen)
