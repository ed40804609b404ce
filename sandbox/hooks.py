"""Repository and workspace webhooks registered through REST, and their HMAC-signed deliveries.

CRUD follows the `webhook_subscription` rules of reference §14: 201 + Location on create, `secret`
write-only (omitted on update keeps it, null/"" removes it, `secret_set` tells), owner-only workspace
hooks (403 otherwise), events validated against the enum (and the scope each event needs), URLs must
be absolute http(s). **Deviation:** loopback URLs are accepted (Bitbucket refuses non-routable ones).
Deliveries carry the unwrapped payload with `X-Hub-Signature: sha256=<hex>` when a secret is set.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
import uuid
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from flask import Flask, Response, g, jsonify, request

from .auth import event_scope
from .delivery import USER_AGENT
from .model import Delivery, new_uuid, utc_now_iso
from .query import ApiError
from .rest import NOT_ACCESSIBLE

if TYPE_CHECKING:  # pragma: no cover
    from .core import Sandbox
    from .rest import Api

HOOK_EVENTS = (
    "repo:push", "repo:created", "repo:deleted", "repo:updated", "repo:fork", "repo:imported", "repo:transfer",
    "repo:commit_comment_created", "repo:commit_status_created", "repo:commit_status_updated",
    "pullrequest:created", "pullrequest:updated", "pullrequest:approved", "pullrequest:unapproved",
    "pullrequest:fulfilled", "pullrequest:rejected", "pullrequest:push", "pullrequest:changes_request_created",
    "pullrequest:changes_request_removed", "pullrequest:comment_created", "pullrequest:comment_updated",
    "pullrequest:comment_deleted", "pullrequest:comment_resolved", "pullrequest:comment_reopened",
    "issue:created", "issue:updated", "issue:comment_created", "project:updated", "pipeline:span_created")
MAX_SECRET = 128


@dataclass
class Hook:
    uuid: str
    workspace_uuid: str
    repository_uuid: str | None  # None: a workspace hook
    url: str
    description: str
    active: bool
    events: list[str]
    secret: str | None = field(default=None, repr=False)
    created_at: str = field(default_factory=utc_now_iso)


def sign(secret: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256(secret, body)>`, as Bitbucket signs hook deliveries."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class HookStore:
    """Every registered hook; also the sandbox listener that delivers events to them."""

    def __init__(self, sb: "Sandbox") -> None:
        self.sb = sb
        self._hooks: dict[str, Hook] = {}
        self._lock = threading.Lock()
        self.workspace_hooks_emit_created = True  # §16 Q11: unverified whether workspace hooks see repo:created

    def all(self, workspace: str | None = None) -> list[Hook]:
        ws = self.sb.workspace(workspace).uuid if workspace else None
        with self._lock:
            return [h for h in self._hooks.values() if ws is None or h.workspace_uuid == ws]

    def add(self, hook: Hook) -> Hook:
        with self._lock:
            self._hooks[hook.uuid] = hook
        return hook

    def get(self, uid: str) -> Hook | None:
        key = uid.strip().lower()
        key = key if key.startswith("{") else "{" + key + "}"
        with self._lock:
            return self._hooks.get(key)

    def remove(self, uid: str) -> None:
        with self._lock:
            self._hooks.pop(uid, None)

    # --- delivery (a Sandbox listener) ------------------------------------------------------
    def targets(self, workspace_uuid: str, event_key: str, data: dict) -> list[Hook]:
        repo = data.get("fork") if event_key == "repo:fork" else data.get("repository")
        repo_uuid = repo.get("uuid") if isinstance(repo, dict) else None
        out = []
        for hook in self.all():
            if not hook.active or event_key not in hook.events or hook.workspace_uuid != workspace_uuid:
                continue
            if hook.repository_uuid is None and event_key == "repo:created" and not self.workspace_hooks_emit_created:
                continue
            if hook.repository_uuid is None or hook.repository_uuid == repo_uuid:
                out.append(hook)
        return out

    def wants(self, workspace_uuid: str, event_key: str) -> bool:
        return any(h.workspace_uuid == workspace_uuid and event_key in h.events for h in self.all())

    def deliver(self, workspace_uuid: str, event_key: str, data: dict) -> list[Delivery]:
        ws = self.sb.workspace(workspace_uuid)
        return [self.send(hook, ws.slug, event_key, data) for hook in self.targets(workspace_uuid, event_key, data)]

    def send(self, hook: Hook, workspace_slug: str, event_key: str, data: dict, *, attempts: int = 3) -> Delivery:
        """Deliver the unwrapped payload to one hook (signed when it has a secret)."""
        body = json.dumps(data, separators=(",", ":")).encode()
        record = Delivery(event=event_key, url=hook.url, workspace=workspace_slug, client_key=None,
                          request_uuid=str(uuid.uuid4()), hook_uuid=hook.uuid, body=body)

        def headers(attempt: int) -> dict[str, str]:
            out = {"Content-Type": "application/json", "User-Agent": USER_AGENT, "X-Event-Key": event_key,
                   "X-Event-Time": formatdate(usegmt=True), "X-Hook-UUID": hook.uuid,
                   "X-Request-UUID": record.request_uuid, "X-Attempt-Number": str(attempt)}
            if hook.secret:
                out["X-Hub-Signature"] = sign(hook.secret, body)
            return out

        return self.sb.deliverer._post_with_retries(record, headers, attempts)


# --- REST views -------------------------------------------------------------------------------

def _body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "Bad request", "the body must be a JSON object")
    return body


def _validate(body: dict, hook: Hook | None, p) -> dict:
    """The fields to set from a create (hook None) or update body; 400/403 on bad input."""
    out: dict = {}
    if hook is None or "url" in body:
        url = body.get("url")
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ApiError(400, "Invalid webhook URL", "url must be an absolute http(s) URL")
        out["url"] = url
    if hook is None or "events" in body:
        events = body.get("events")
        if not isinstance(events, list) or not events or len(set(events)) != len(events) \
                or any(e not in HOOK_EVENTS for e in events):
            raise ApiError(400, "Invalid events", "events must be a non-empty list of distinct known events")
        missing = sorted({event_scope(e) for e in events} - p.scopes)
        if missing:
            raise ApiError(403, "Your credentials lack one or more required privilege scopes.",
                           detail={"required": missing})
        out["events"] = list(events)
    if "secret" in body:
        secret = body["secret"]
        if secret is not None and (not isinstance(secret, str) or len(secret) > MAX_SECRET):
            raise ApiError(400, "Invalid secret", f"secret must be a string of at most {MAX_SECRET} characters")
        out["secret"] = secret or None
    for name, kind in (("description", str), ("active", bool)):
        if name in body:
            if not isinstance(body[name], kind):
                raise ApiError(400, f"Invalid {name}")
            out[name] = body[name]
    return out


def register_hook_views(app: Flask, api: "Api") -> None:
    sb = api.sb
    store: HookStore = sb.hooks

    def allowed(write: bool) -> None:
        p = g.principal
        if p.kind == "forge-system":  # hooks are not a Forge auth type (F18, reference §7)
            raise ApiError(403, NOT_ACCESSIBLE)
        if not (p.has("webhook") or p.has("webhook:write" if write else "webhook:read")):
            raise ApiError(403, "Your credentials lack one or more required privilege scopes.",
                           detail={"required": ["webhook"]})

    def render(hook: Hook) -> dict:
        ws = sb.workspace(hook.workspace_uuid)
        if hook.repository_uuid:
            r = sb.find_repository(ws, hook.repository_uuid)
            subject = sb.renderer.repository(ws, r, full=False) if r else {"type": "repository",
                                                                             "uuid": hook.repository_uuid}
            self_url = f"{sb.api_url}/2.0/repositories/{ws.slug}/{hook.repository_uuid}/hooks/{hook.uuid}"
        else:
            subject = sb.renderer.workspace(ws, full=False)
            self_url = f"{sb.api_url}/2.0/workspaces/{ws.slug}/hooks/{hook.uuid}"
        return {"type": "webhook_subscription", "uuid": hook.uuid, "url": hook.url,
                "description": hook.description, "subject_type": "repository" if hook.repository_uuid else "workspace",
                "subject": subject, "active": hook.active, "created_at": hook.created_at,
                "events": hook.events, "secret_set": bool(hook.secret), "links": {"self": {"href": self_url}}}

    def subject(ws_ident: str, repo_ident: str | None) -> tuple[str, str | None]:
        if repo_ident is None:
            return api.own_workspace(ws_ident).uuid, None
        w, r = api.visible_repo(ws_ident, repo_ident)
        return w.uuid, r.uuid

    def find(ws_ident: str, repo_ident: str | None, uid: str) -> Hook:
        ws_uuid, repo_uuid = subject(ws_ident, repo_ident)
        hook = store.get(uid)
        if hook is None or hook.workspace_uuid != ws_uuid or hook.repository_uuid != repo_uuid:
            raise ApiError(404, "Webhook not found")
        return hook

    def listing(ws: str, repo: str | None = None) -> Response:
        allowed(write=False)
        ws_uuid, repo_uuid = subject(ws, repo)
        return api.listing([render(h) for h in store.all(ws_uuid) if h.repository_uuid == repo_uuid])

    def create(ws: str, repo: str | None = None) -> Response:
        allowed(write=True)
        ws_uuid, repo_uuid = subject(ws, repo)
        if repo_uuid is None and not sb.tokenmode.is_owner(g.principal):
            raise ApiError(403, "Only workspace owners can install webhooks on workspaces.")
        fields = _validate(_body(), None, g.principal)
        hook = store.add(Hook(uuid=new_uuid(), workspace_uuid=ws_uuid, repository_uuid=repo_uuid,
                              url=fields["url"], description=fields.get("description", ""),
                              active=fields.get("active", True), events=fields["events"], secret=fields.get("secret")))
        resp = jsonify(render(hook))
        resp.status_code, resp.headers["Location"] = 201, render(hook)["links"]["self"]["href"]
        return resp

    def one(ws: str, uid: str, repo: str | None = None) -> Response:
        allowed(write=request.method != "GET")
        hook = find(ws, repo, uid)
        if request.method == "GET":
            return jsonify(render(hook))
        if request.method == "DELETE":
            store.remove(hook.uuid)
            return Response(status=204)
        for name, value in _validate(_body(), hook, g.principal).items():
            setattr(hook, name, value)
        return jsonify(render(hook))

    app.add_url_rule("/2.0/workspaces/<ws>/hooks", "ws_hooks", listing, methods=["GET"])
    app.add_url_rule("/2.0/workspaces/<ws>/hooks", "ws_hooks_create", create, methods=["POST"])
    app.add_url_rule("/2.0/workspaces/<ws>/hooks/<uid>", "ws_hook", one, methods=["GET", "PUT", "DELETE"])
    app.add_url_rule("/2.0/repositories/<ws>/<repo>/hooks", "repo_hooks", listing, methods=["GET"])
    app.add_url_rule("/2.0/repositories/<ws>/<repo>/hooks", "repo_hooks_create", create, methods=["POST"])
    app.add_url_rule("/2.0/repositories/<ws>/<repo>/hooks/<uid>", "repo_hook", one,
                     methods=["GET", "PUT", "DELETE"])

    @app.get("/2.0/hook_events/<subject_type>")
    def hook_events(subject_type: str) -> Response:
        if subject_type not in ("repository", "workspace"):
            raise ApiError(404, "Resource not found")
        return api.listing([{"type": "hook_event", "event": e, "category": e.split(":")[0]} for e in HOOK_EVENTS])
