"""Bitbucket product events as Forge sends them (reference §3): thin payloads of UUIDs, one ref per push."""
from __future__ import annotations

from datetime import datetime, timezone

from .model import Workspace

# Webhook event -> Forge product event. repo:fork, repo:transfer and repo:imported have no Forge event.
EVENT_TYPES = {"repo:created": "avi:bitbucket:created:repository",
               "repo:updated": "avi:bitbucket:updated:repository",
               "repo:deleted": "avi:bitbucket:deleted:repository",
               "repo:push": "avi:bitbucket:push:repository"}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def forge_events(event_key: str, data: dict, ws: Workspace) -> list[dict]:
    """The Forge events Bitbucket would emit for a webhook-style event about `ws`."""
    kind = EVENT_TYPES.get(event_key)
    repo = data.get("repository") if isinstance(data.get("repository"), dict) else None
    if kind is None or repo is None:
        return []
    actor = data.get("actor") or {}
    base = {"eventType": kind, "timestamp": _now(), "selfGenerated": False,
            "actor": {"type": "user", "accountId": actor.get("account_id"), "uuid": actor.get("uuid")},
            "repository": {"uuid": repo["uuid"], "slug": (repo.get("full_name") or "").rpartition("/")[2] or None},
            "project": {"uuid": (repo.get("project") or {}).get("uuid")}, "workspace": {"uuid": ws.uuid}}
    if event_key == "repo:updated":
        changes = {k: {"old": {"value": v.get("old"), "truncated": False}, "new": {"value": v.get("new"), "truncated": False}}
                   for k, v in (data.get("changes") or {}).items()}
        return [dict(base, changes=changes)]
    if event_key != "repo:push":
        return [base]
    return [dict(base, push=_push(change)) for change in data.get("push", {}).get("changes", [])]


def _push(change: dict) -> dict:
    """One ref's CommitPush/TagPush object (the Forge push event carries a single ref)."""
    side = change.get("new") or change.get("old") or {}
    prefix = "refs/tags/" if side.get("type") == "tag" else "refs/heads/"
    push = {"ref": prefix + side.get("name", ""), "created": change.get("created", False),
            "closed": change.get("closed", False), "forced": change.get("forced", False),
            "truncated": change.get("truncated", False)}
    if change.get("old"):
        push["before"] = change["old"]["target"]["hash"][:12]
    if change.get("new"):
        push["after"] = change["new"]["target"]["hash"][:12]
    push["commits"] = [{"hash": c["hash"][:12], "message": {"value": c.get("message", ""), "truncated": False},
                        "date": c.get("date")} for c in change.get("commits", [])]
    return push


def mark_retry(body: dict, retry_count: int, last_status: int | None) -> dict:
    """A redelivery carries `retryContext` (nested under `payload` when the body is wrapped)."""
    reason = "INVALID_FORGE_INVOCATION_TOKEN" if last_status == 401 else (
        "TIMEOUT_ERROR" if last_status is None else "INVALID_REMOTE_INVOCATION_ERROR")
    context = {"retryData": None, "retryCount": retry_count, "retryReason": reason}
    if isinstance(body.get("payload"), dict):
        return dict(body, payload=dict(body["payload"], retryContext=context))
    return dict(body, retryContext=context)
