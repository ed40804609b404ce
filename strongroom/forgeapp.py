"""The Forge app with a remote backend (INTERFACE.md §3.2): lifecycle, product events, ticks, pre-uninstall, UI.

A Forge installation binds the workspace's tenant (keyed by workspace UUID, so a workspace that came
from Connect keeps its snapshots). Forge's system token is cached per workspace (newest expiry wins);
without one, syncs wait for the next tick. Events carry ids only and are never trusted as state: a
push asks for a sync (git reads the truth), anything else plans a refresh that re-reads the workspace
through REST, so late, duplicated or out-of-order events are harmless. Requests answer after database
writes only; host I/O runs in the workers.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import jwt
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .backup import request_sync
from .bindings import binding, tenant_for_workspace
from .connect.payloads import normalize_uuid
from .context import Context
from .errors import AuthError, Forbidden, InvalidInput, NotFound, StrongroomError
from .forge import Invocation
from .host.client import HostClient, MemoryTokenCache
from .host.credentials import ForgeSystemCredentials, derive_base_url
from .jobs import create_job
from .repositories import find_repository
from .scope import should_sync
from .store.models import Event, Installation, Job, Tenant, utcnow

log = logging.getLogger(__name__)
FALLBACK_TOKEN_SECONDS = 3600  # a system token whose exp we cannot read is trusted for an hour at most
WORKSPACE_READ_TIMEOUT = 3.0  # Forge gives a remote 5 s; one REST read must fit well inside
REPOSITORY_EVENTS = {"avi:bitbucket:created:repository": "repo:created",
                     "avi:bitbucket:updated:repository": "repo:updated",
                     "avi:bitbucket:deleted:repository": "repo:deleted",
                     "avi:bitbucket:push:repository": "repo:push"}
ADMIN_PERMISSIONS = ("owner",)
_ACCOUNT_ID = re.compile(r"[A-Za-z0-9:_-]{1,128}")


@dataclass(frozen=True)
class Outcome:
    """What the web front dispatches after the commit: syncs and jobs."""

    tenant_id: str | None = None
    sync_ids: tuple[str, ...] = ()
    job_ids: tuple[str, ...] = ()
    status: str = "accepted"
    details: dict = field(default_factory=dict)


def unwrap(body: object) -> dict:
    """Forge may send an event bare or as ``{"payload": ...}`` (reference §5, Q1): accept both."""
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object")
    inner = body.get("payload")
    return inner if isinstance(inner, dict) else body


def check_body_workspace(invocation: Invocation, body: dict) -> None:
    """A body that names another workspace than the token is refused (403), before anything is recorded."""
    named = []
    workspace = body.get("workspace")
    if isinstance(workspace, dict):
        named.append(workspace.get("uuid"))
    context = body.get("context")
    if isinstance(context, str):
        named.append(context.rpartition("/")[2] if context.startswith("ari:cloud:bitbucket::workspace/") else None)
    elif isinstance(context, dict):
        named += [context.get("workspaceId"), context.get("workspace", {}).get("uuid")
                  if isinstance(context.get("workspace"), dict) else None]
    for value in (v for v in named if v is not None):
        try:
            same = normalize_uuid(value) == invocation.workspace_uuid
        except InvalidInput:
            same = False
        if not same:
            raise Forbidden("the body names another workspace than the invocation token", code="foreign_workspace")


def token_expiry(token: str) -> float:
    """The system token's ``exp`` (the rest of it is opaque to us; reference §7)."""
    try:
        exp = jwt.decode(token, options={"verify_signature": False}).get("exp")
    except jwt.PyJWTError:
        exp = None
    if isinstance(exp, (int, float)) and not isinstance(exp, bool):
        return float(exp)
    return time.time() + FALLBACK_TOKEN_SECONDS


def _keep_token(ctx: Context, inst: Installation, token: str | None) -> bool:
    """Cache the token when it outlives the cached one; returns True if no valid token was cached before."""
    now = time.time()
    had_valid = bool(inst.token_enc) and (inst.token_expires_at or 0) > now
    if token:
        expires = token_expiry(token)
        if expires > now and (not had_valid or expires > (inst.token_expires_at or 0)):
            inst.token_enc, inst.token_expires_at = ctx.box.encrypt(token), expires
    return not had_valid


def _workspace_info(ctx: Context, invocation: Invocation, token: str | None) -> dict:
    """Slug, name and web origin from REST; an empty dict when Bitbucket cannot answer yet."""
    if not token or not invocation.api_base_url:
        return {}
    guess = derive_base_url(invocation.api_base_url)
    try:
        client = HostClient(ForgeSystemCredentials(token, guess, invocation.api_base_url),
                            token_cache=MemoryTokenCache(), timeout=WORKSPACE_READ_TIMEOUT, max_retries=0)
        data = client.get_workspace(invocation.workspace_uuid)
    except StrongroomError as exc:  # e.g. permissions are granted minutes after install (reference §9)
        log.info("workspace read for %s failed (%s); the next tick retries", invocation.workspace_uuid, exc.code)
        return {}
    html = (data.get("links") or {}).get("html", {}).get("href") if isinstance(data.get("links"), dict) else None
    web = f"{urlsplit(html).scheme}://{urlsplit(html).netloc}" if isinstance(html, str) and "://" in html else guess
    return {"slug": data.get("slug"), "name": data.get("name"), "base_url": web}


def _check_hosts(ctx: Context, *urls: str) -> None:
    allowed = {h.rstrip("/").lower() for h in ctx.settings.allowed_hosts}
    for url in urls:
        parts = urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}".lower() not in allowed:
            raise Forbidden(f"{parts.scheme}://{parts.netloc} is not in STRONGROOM_ALLOWED_HOSTS",
                            code="host_not_allowed")


def bind(ctx: Context, invocation: Invocation, token: str | None, *, activate: bool) -> tuple[str, str, bool, bool]:
    """Create or rebind the workspace's Forge binding; returns (tenant, installation, was_active, had_no_token)."""
    if not invocation.api_base_url:
        raise AuthError("the invocation token names no Bitbucket API base URL", code="invalid_token")
    info = _workspace_info(ctx, invocation, token)
    base_url = info.get("base_url") or derive_base_url(invocation.api_base_url)
    _check_hosts(ctx, invocation.api_base_url, base_url)
    with ctx.db.session() as s:
        tenant = tenant_for_workspace(s, invocation.workspace_uuid)
        if tenant is None:
            tenant = Tenant(workspace_uuid=invocation.workspace_uuid, workspace_slug="", workspace_name="")
            s.add(tenant)
        tenant.workspace_slug = info.get("slug") or tenant.workspace_slug
        tenant.workspace_name = info.get("name") or tenant.workspace_name or tenant.workspace_slug
        s.flush()
        inst = binding(s, tenant.id, "forge")
        if inst is None:
            inst = Installation(tenant_id=tenant.id, path="forge", status="new")
            s.add(inst)
        was_active = inst.status == "active"
        if activate and not was_active:
            inst.status, inst.installed_at, inst.uninstalled_at = "active", utcnow(), None
        inst.base_api_url = invocation.api_base_url.rstrip("/")
        if info or not inst.base_url:
            inst.base_url = base_url
        inst.last_contact_at = utcnow()
        details = json.loads(inst.details_json or "{}")
        if details.get("installation_id") != invocation.installation_id:  # a reinstall: rebind silently
            inst.details_json = json.dumps({**details, "installation_id": invocation.installation_id})
        had_no_token = _keep_token(ctx, inst, token)
        s.flush()
        return tenant.id, inst.id, was_active, had_no_token


def handle_lifecycle(ctx: Context, invocation: Invocation, body: object, token: str | None) -> Outcome:
    """``avi:forge:installed:app`` / ``upgraded:app``: bind the workspace; the first binding starts a backup."""
    event = unwrap(body)
    check_body_workspace(invocation, event)
    kind = event.get("eventType")
    if kind not in ("avi:forge:installed:app", "avi:forge:upgraded:app", None):
        raise InvalidInput(f"unsupported lifecycle event {kind!r}")
    tenant_id, _, was_active, _ = bind(ctx, invocation, token, activate=True)
    if was_active:
        return Outcome(tenant_id, status="bound")
    with ctx.db.session() as s:
        job = create_job(s, tenant_id, kind="backup_all", trigger="install")
        return Outcome(tenant_id, job_ids=(job.id,), status="installed")


def handle_tick(ctx: Context, invocation: Invocation, body: object, token: str | None) -> Outcome:
    """The scheduled trigger: keep the fresh system token; after a time without one, catch up with a sweep."""
    check_body_workspace(invocation, unwrap(body))
    tenant_id, _, was_active, had_no_token = bind(ctx, invocation, token, activate=True)
    if was_active and not had_no_token:
        return Outcome(tenant_id, status="token")
    with ctx.db.session() as s:
        return Outcome(tenant_id, job_ids=(_refresh_job(s, tenant_id),), status="resumed")


def handle_uninstall(ctx: Context, invocation: Invocation, body: object) -> Outcome:
    """Pre-uninstall: the binding is disconnected and its token dropped; every backup is kept."""
    check_body_workspace(invocation, unwrap(body))
    with ctx.db.session() as s:
        tenant = tenant_for_workspace(s, invocation.workspace_uuid)
        inst = binding(s, tenant.id, "forge") if tenant else None
        if inst is None:
            return Outcome(status="unknown")
        inst.status, inst.uninstalled_at = "disconnected", utcnow()
        inst.token_enc, inst.token_expires_at = None, None
        return Outcome(tenant.id, status="disconnected")


def handle_event(ctx: Context, invocation: Invocation, body: object, token: str | None) -> Outcome:
    """A Bitbucket product event: deduplicated, recorded, and turned into a sync or a REST refresh."""
    event = unwrap(body)
    check_body_workspace(invocation, event)
    kind = event.get("eventType")
    if not isinstance(kind, str) or not kind or len(kind) > 64:
        raise InvalidInput("the event has no eventType")
    tenant_id = _tenant_for_event(ctx, invocation, token)
    clean = {k: v for k, v in event.items() if k != "retryContext"}  # a redelivery is the same event
    digest = hashlib.sha256(json.dumps(clean, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    try:
        with ctx.db.session() as s:
            if s.scalars(select(Event.id).where(Event.tenant_id == tenant_id,
                                                Event.delivery_id == f"forge:{digest}")).first():
                return Outcome(tenant_id, status="duplicate")
            s.add(Event(tenant_id=tenant_id, source="forge", delivery_id=f"forge:{digest}", event_key=kind,
                        payload_json=json.dumps(clean, separators=(",", ":")), processed_at=utcnow()))
            return _apply_event(s, tenant_id, kind, clean)
    except IntegrityError:
        return Outcome(tenant_id, status="duplicate")  # a concurrent duplicate delivery won the race


def _tenant_for_event(ctx: Context, invocation: Invocation, token: str | None) -> str:
    with ctx.db.session() as s:
        tenant = tenant_for_workspace(s, invocation.workspace_uuid)
        inst = binding(s, tenant.id, "forge") if tenant else None
        if inst is not None:
            inst.last_contact_at = utcnow()
            _keep_token(ctx, inst, token)
            return tenant.id
    # The installed event was lost: bind now (events never re-activate a disconnected binding).
    return bind(ctx, invocation, token, activate=True)[0]


def _apply_event(s, tenant_id: str, kind: str, event: dict) -> Outcome:
    if kind not in REPOSITORY_EVENTS:
        return Outcome(tenant_id, status="ignored")  # pull-request events: nothing to back up from them
    repository = event.get("repository") if isinstance(event.get("repository"), dict) else {}
    try:
        repo = find_repository(s, tenant_id, repository.get("uuid")) if repository.get("uuid") else None
    except InvalidInput:
        repo = None
    tenant = s.get(Tenant, tenant_id)
    if kind == "avi:bitbucket:push:repository" and repo is not None:
        if not should_sync(tenant, repo):
            return Outcome(tenant_id, status="ignored")
        request_sync(repo, "push")  # the fetch reads what really is there; the payload is not trusted
        return Outcome(tenant_id, sync_ids=(repo.id,))
    return Outcome(tenant_id, job_ids=(_refresh_job(s, tenant_id),), status="refresh")


def _refresh_job(s, tenant_id: str) -> str:
    """A whole-workspace refresh (REST inventory + cheap ls-remote checks); reuses one still queued."""
    queued = s.scalars(select(Job.id).where(Job.tenant_id == tenant_id, Job.kind == "backup_all",
                                            Job.started_at.is_(None), Job.error.is_(None))).first()
    return queued or create_job(s, tenant_id, kind="backup_all", trigger="sweep").id


def authorize_ui(ctx: Context, invocation: Invocation, method: str, token: str | None) -> tuple[str, str]:
    """The settings page's call: (tenant id, actor). Changes need a workspace admin, checked through REST."""
    with ctx.db.session() as s:
        tenant = tenant_for_workspace(s, invocation.workspace_uuid)
        inst = binding(s, tenant.id, "forge") if tenant else None
        if inst is None:
            raise NotFound("this workspace has no Strongroom installation yet")
        _keep_token(ctx, inst, token)
        s.flush()
        s.expunge(inst)
        tenant_id = tenant.id
    actor = f"forge:{invocation.principal or 'unknown'}"
    if method.upper() in ("GET", "HEAD", "OPTIONS"):
        return tenant_id, actor
    if not invocation.principal or not _ACCOUNT_ID.fullmatch(invocation.principal):
        raise Forbidden("changes need a signed-in workspace admin", code="not_admin")
    permission = _permission(ctx, inst, invocation)
    if permission not in ADMIN_PERMISSIONS:
        raise Forbidden("only workspace admins may change Strongroom's settings", code="not_admin")
    return tenant_id, actor


def _permission(ctx: Context, inst: Installation, invocation: Invocation) -> str | None:
    host = ctx.host_for(inst)
    path = f"workspaces/{invocation.workspace_uuid.replace('{', '%7B').replace('}', '%7D')}/permissions"
    body = host.request_json("GET", path, params={"q": f'user.account_id="{invocation.principal}"'})
    for value in body.get("values") or []:
        user = value.get("user") if isinstance(value, dict) else None
        if isinstance(user, dict) and user.get("account_id") == invocation.principal:
            return value.get("permission")
    return None
