"""Repository events from the host: recorded durably before acknowledging, then applied by workers."""
from __future__ import annotations

import json
import logging
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from .backup import request_sync
from .connect.payloads import normalize_uuid
from .context import Context
from .errors import Forbidden, InvalidInput, PermanentError
from .host.events import RepositoryEvent, parse_repository_event
from .ports import Dispatcher
from .repositories import (RepoInfo, ensure_not_foreign, find_repository, mark_deleted_upstream,
                           settings_from_event, upsert_repository)
from .scope import should_sync
from .store.models import Event, Tenant, utcnow

log = logging.getLogger(__name__)
ADDING_EVENTS = ("repo:push", "repo:created", "repo:imported", "repo:updated", "repo:transfer")


def record_event(ctx: Context, tenant_id: str, *, source: str, delivery_id: str | None,
                 event_key: str, data: dict) -> str | None:
    """Validate and store one delivery; returns the event id, or None for a duplicate delivery.

    Nothing is stored for an event about another workspace's repository.
    """
    event = parse_repository_event(event_key, data)
    try:
        with ctx.db.session() as s:  # one transaction: checks, dedupe and insert
            tenant = s.get(Tenant, tenant_id)
            ws = event.repository.workspace_uuid
            if ws is not None and normalize_uuid(ws) != tenant.workspace_uuid:
                raise Forbidden("the event names a repository of another workspace", code="foreign_workspace")
            ensure_not_foreign(s, tenant_id, event.repository.uuid)
            if delivery_id and s.scalars(select(Event.id).where(Event.tenant_id == tenant_id,
                                                                Event.delivery_id == delivery_id)).first():
                return None
            row = Event(tenant_id=tenant_id, source=source, delivery_id=delivery_id, event_key=event_key,
                        payload_json=json.dumps(data, separators=(",", ":")))
            s.add(row)
    except IntegrityError:
        return None  # a concurrent duplicate delivery won the race
    return row.id


def process_event(ctx: Context, event_id: str, dispatcher: Dispatcher) -> str:
    """Apply a recorded event (idempotent): add, rename, flag deleted, or request a sync."""
    with ctx.db.session() as s:
        # Claim first (a write as the transaction's first statement): a concurrent copy of this task
        # (the janitor re-dispatched it) waits for the row and then finds it processed.
        claimed = s.execute(update(Event).where(Event.id == event_id, Event.processed_at.is_(None))
                            .values(attempts=Event.attempts + 1)).rowcount
        row = s.get(Event, event_id) if claimed else None
        if row is None:
            return "skipped"
        try:
            payload = json.loads(row.payload_json)
            event = parse_repository_event(row.event_key, payload)
            with s.begin_nested():
                to_sync = _apply(ctx, s, s.get(Tenant, row.tenant_id), event, row.received_at,
                                 settings_from_event(row.event_key, payload))
        except PermanentError as exc:  # recorded, never retried forever by the janitor
            row.processed_at, row.error = utcnow(), f"{exc.code}: {exc}"
            log.warning("event %s could not be applied: %s", event_id, row.error)
            return "rejected"
        row.processed_at, row.error = utcnow(), None
    if to_sync:
        dispatcher.sync_repository(to_sync)
    return event.key


def _apply(ctx: Context, s, tenant: Tenant, event: RepositoryEvent, received_at, settings: dict) -> str | None:
    ref = event.repository
    if event.key == "repo:deleted":
        repo = find_repository(s, tenant.id, ref.uuid)
        if repo is not None:
            mark_deleted_upstream(repo)
        return None
    if event.key not in ADDING_EVENTS:
        return None
    info = RepoInfo(uuid=ref.uuid, slug=ref.slug or "", name=ref.name or ref.slug or "",
                    full_name=ref.full_name or "", settings=settings)
    existing = find_repository(s, tenant.id, ref.uuid)
    if existing is None and not info.slug:
        raise InvalidInput("event for an unknown repository carries no slug")
    if existing is not None and existing.deleted_upstream and existing.deleted_at and received_at <= existing.deleted_at:
        return None  # events are applied out of order: one received before the deletion must not undo it
    repo, created = upsert_repository(ctx, s, tenant, info)
    if event.key in ("repo:created", "repo:imported", "repo:push"):
        repo.deleted_upstream, repo.deleted_at = False, None
    if event.key in ("repo:updated", "repo:transfer"):
        repo.clone_url = None  # names changed: the next sync reads links.clone afresh
    wants_sync = event.key == "repo:push" or created or repo.snapshot_count == 0
    if wants_sync and should_sync(tenant, repo):
        request_sync(repo, "push")
        s.flush()
        return repo.id
    return None


def pending_event_ids(ctx: Context, older_than_seconds: int, limit: int = 500) -> list[str]:
    """Events recorded but not yet applied (e.g. the broker was down when they arrived)."""
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    with ctx.db.session() as s:
        return list(s.scalars(select(Event.id).where(Event.processed_at.is_(None), Event.received_at < cutoff)
                              .order_by(Event.received_at).limit(limit)))
