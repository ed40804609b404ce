"""Self-hosted token mode (INTERFACE.md §3.1): connect a workspace with an access token or API token.

The operator's credential is verified (REST and a git ``ls-remote``) before anything is stored; one
workspace webhook is registered or reconciled (per-repository hooks when the workspace hook is
refused), then the tenant is recorded and its first backup planned. Webhooks come back unwrapped and
HMAC-signed, and take the same outbox path as Connect's.
"""
from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import select

from .bindings import binding, tenant_for_workspace
from .connect.payloads import normalize_uuid
from .context import Context
from .errors import (AuthError, CredentialRejected, Forbidden, InvalidInput, NotFound, RepositoryGone,
                     StrongroomError, Unprocessable)
from .events import record_event
from .host.client import HostClient, HostRejected, MemoryTokenCache
from .host.credentials import derive_base_url, token_credentials
from .host.hooks import (PULLREQUEST_EVENTS, REPOSITORY_EVENTS, RegisteredHook, delete_hook, ensure_hook,
                         repository_subject, workspace_subject)
from .host.webhook_signature import verify_hub_signature
from .jobs import create_job
from .store.models import Installation, Tenant, utcnow
from .vault.git import GitCredentials
from .vault.probe import probe_remote

log = logging.getLogger(__name__)
DEFAULT_API_BASE_URL = "https://api.bitbucket.org"
CONNECT_HOST_TIMEOUT = 20.0
PROBE_TIMEOUT = 60.0


@dataclass(frozen=True)
class TokenCredential:
    """What the operator handed over: the kind, the secret (read from a file) and where Bitbucket is."""

    kind: str  # access_token | api_token
    token: str = field(repr=False)
    email: str | None = None
    api_base_url: str = DEFAULT_API_BASE_URL
    base_url: str | None = None  # derived from api_base_url when None

    @property
    def web_base_url(self) -> str:
        """The site origin: given, or ``api.<host>`` -> ``<host>`` (api.bitbucket.org -> bitbucket.org)."""
        return (self.base_url or derive_base_url(self.api_base_url)).rstrip("/")


@dataclass(frozen=True)
class ConnectResult:
    tenant_id: str
    installation_id: str
    workspace_uuid: str
    workspace_slug: str
    job_id: str
    repositories: int
    hooks: tuple[RegisteredHook, ...]
    events: tuple[str, ...]


def hook_url(ctx: Context, workspace_uuid: str) -> str:
    """Where Bitbucket delivers this workspace's webhooks."""
    return f"{ctx.settings.base_url}/hooks/bitbucket/{normalize_uuid(workspace_uuid).strip('{}')}"


def connect_workspace(ctx: Context, workspace: str, credential: TokenCredential, *,
                      expires_at: datetime | None = None) -> ConnectResult:
    """Verify the credential, register the webhook(s), record the tenant and plan its first backup."""
    creds = token_credentials(credential.kind, credential.token, email=credential.email,
                              base_url=credential.web_base_url, base_api_url=credential.api_base_url)
    _check_allowed_hosts(ctx, (creds.base_url, creds.base_api_url))
    client = HostClient(creds, token_cache=MemoryTokenCache(), timeout=CONNECT_HOST_TIMEOUT, max_retries=1)
    ws = _read_workspace(client, workspace)
    repos = _list_repositories(client, ws)
    _probe_git(client, repos)
    events = REPOSITORY_EVENTS + (PULLREQUEST_EVENTS if _can_read_pullrequests(client, ws, repos) else ())
    secret = _existing_hook_secret(ctx, ws["uuid"]) or secrets.token_urlsafe(32)
    hooks = _register_hooks(client, ws, repos, hook_url(ctx, ws["uuid"]), events, secret)
    return _record(ctx, ws, credential, creds, secret=secret, hooks=hooks, events=events,
                   expires_at=expires_at, repositories=len(repos))


def _check_allowed_hosts(ctx: Context, urls: tuple[str, ...]) -> None:
    allowed = {_origin(h) for h in ctx.settings.allowed_hosts}
    for url in urls:
        if _origin(url) not in allowed:
            raise Forbidden(f"{_origin(url)} is not in STRONGROOM_ALLOWED_HOSTS", code="host_not_allowed")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _read_workspace(client: HostClient, workspace: str) -> dict:
    try:
        data = client.get_workspace(workspace)
    except CredentialRejected as exc:
        raise CredentialRejected("Bitbucket refused the credential: check that the token is valid and not "
                                 "expired (and, for an API token, that the email is its owner's)",
                                 code="credential_refused") from exc
    except NotFound as exc:
        raise NotFound(f"workspace {workspace!r} does not exist or this credential cannot see it") from exc
    uuid, slug = data.get("uuid"), data.get("slug")
    if not isinstance(uuid, str) or not isinstance(slug, str):
        raise Unprocessable("Bitbucket's workspace answer has no uuid or slug")
    return {"uuid": normalize_uuid(uuid), "slug": slug, "name": str(data.get("name") or slug)}


def _list_repositories(client: HostClient, ws: dict) -> list[dict]:
    try:
        return list(client.iter_repositories(ws["uuid"]))
    except CredentialRejected as exc:  # the workspace read worked, so the credential is valid
        raise Forbidden("the credential cannot list the workspace's repositories: it lacks the repository "
                        "read scope", code="missing_scope") from exc


def _probe_git(client: HostClient, repos: list[dict]) -> None:
    """One ``git ls-remote`` proves that git accepts the credential (API tokens need their own git user)."""
    if not repos:
        return
    url = client.clone_url(repos[0])
    try:
        probe_remote(url, GitCredentials(*client.git_credentials()), timeout=PROBE_TIMEOUT)
    except (CredentialRejected, RepositoryGone) as exc:
        raise Forbidden(f"git refused the credential for {repos[0].get('full_name', 'a repository')}: it needs "
                        "repository read access over HTTPS", code="git_refused") from exc


def _can_read_pullrequests(client: HostClient, ws: dict, repos: list[dict]) -> bool:
    """Pull-request events are subscribed only when the credential may read pull requests."""
    if not repos:
        return False
    try:
        client.request_json("GET", f"{repository_subject(ws['uuid'], repos[0]['uuid'])}/pullrequests",
                            params={"pagelen": 1})
    except (CredentialRejected, NotFound, HostRejected):
        return False
    return True


def _existing_hook_secret(ctx: Context, workspace_uuid: str) -> str | None:
    """Reuse our secret on a reconnect, so deliveries already under way still verify."""
    with ctx.db.session() as s:
        tenant = tenant_for_workspace(s, workspace_uuid)
        inst = binding(s, tenant.id, "token") if tenant else None
        return ctx.box.decrypt(inst.hook_secret_enc) if inst and inst.hook_secret_enc else None


def _register_hooks(client: HostClient, ws: dict, repos: list[dict], url: str, events: tuple[str, ...],
                    secret: str) -> tuple[RegisteredHook, ...]:
    """One workspace hook; when the host refuses it (not an owner), one hook per repository."""
    try:
        return (_ensure(client, workspace_subject(ws["uuid"]), url, events, secret),)
    except CredentialRejected:
        log.info("workspace hook refused for %s; falling back to repository hooks", ws["slug"])
    if not repos:
        raise Forbidden("cannot create the workspace webhook (it needs the webhook scope and a workspace "
                        "owner's rights) and there is no repository to hook instead", code="webhooks_refused")
    try:
        return tuple(_ensure(client, repository_subject(ws["uuid"], r["uuid"]), url, events, secret) for r in repos)
    except CredentialRejected as exc:
        raise Forbidden("cannot create webhooks: the credential needs the webhook scope, and workspace-owner "
                        "or repository-admin rights", code="webhooks_refused") from exc


def _ensure(client: HostClient, subject: str, url: str, events: tuple[str, ...], secret: str) -> RegisteredHook:
    try:
        return ensure_hook(client, subject, url=url, events=events, secret=secret)
    except HostRejected as exc:
        raise Unprocessable(f"Bitbucket rejected the webhook URL {url}: STRONGROOM_BASE_URL must be reachable "
                            "from Bitbucket", code="webhook_url_rejected") from exc


def _record(ctx: Context, ws: dict, credential: TokenCredential, creds, *, secret: str,
            hooks: tuple[RegisteredHook, ...], events: tuple[str, ...], expires_at: datetime | None,
            repositories: int) -> ConnectResult:
    with ctx.db.session() as s:
        tenant = tenant_for_workspace(s, ws["uuid"])
        if tenant is None:
            tenant = Tenant(workspace_uuid=ws["uuid"], workspace_slug=ws["slug"], workspace_name=ws["name"])
            s.add(tenant)
        tenant.workspace_slug, tenant.workspace_name = ws["slug"], ws["name"]
        s.flush()
        inst = binding(s, tenant.id, "token")
        if inst is None:
            inst = Installation(tenant_id=tenant.id, path="token", status="new")
            s.add(inst)
        if inst.status != "active":
            inst.installed_at, inst.uninstalled_at = utcnow(), None
        inst.status, inst.last_contact_at = "active", utcnow()
        inst.secret_enc, inst.hook_secret_enc = ctx.box.encrypt(credential.token), ctx.box.encrypt(secret)
        inst.base_url, inst.base_api_url = creds.base_url, creds.base_api_url
        inst.credential_expires_at = expires_at
        inst.details_json = json.dumps({"credential": credential.kind, "email": credential.email,
                                        "hooks": [h.as_dict() for h in hooks], "events": list(events)})
        s.flush()
        job = create_job(s, tenant.id, kind="backup_all", trigger="install")
        return ConnectResult(tenant.id, inst.id, ws["uuid"], ws["slug"], job.id, repositories, hooks, events)


def disconnect_workspace(ctx: Context, workspace: str) -> list[str]:
    """Remove the hooks we registered and mark the binding disconnected; returns hooks left behind."""
    with ctx.db.session() as s:
        tenant = s.scalars(select(Tenant).where((Tenant.workspace_slug == workspace)
                                                | (Tenant.workspace_uuid == workspace))).first()
        inst = binding(s, tenant.id, "token") if tenant else None
        if inst is None or inst.status == "disconnected":
            raise NotFound(f"workspace {workspace!r} is not connected in token mode")
        s.expunge(inst)
    hooks = [RegisteredHook(h["subject"], h["uuid"]) for h in json.loads(inst.details_json or "{}").get("hooks", [])]
    left = []
    for hook in hooks:
        try:
            delete_hook(ctx.host_for(inst), hook)
        except StrongroomError as exc:  # an expired credential cannot delete: say which hooks remain
            log.warning("could not delete webhook %s on %s: %s", hook.uuid, hook.subject, exc.code)
            left.append(f"{hook.subject}/hooks/{hook.uuid}")
    with ctx.db.session() as s:
        row = s.get(Installation, inst.id)
        row.status, row.uninstalled_at = "disconnected", utcnow()
        row.secret_enc, row.hook_secret_enc = None, None  # keep no credential we no longer use
        row.details_json = json.dumps({**json.loads(row.details_json or "{}"), "hooks": []})
    return left


def receive_webhook(ctx: Context, workspace_id: str, body: bytes, *, signature: str | None,
                    event_key: str | None, delivery_id: str | None) -> tuple[str, str | None]:
    """Verify the HMAC on the raw body, then record the event; returns (tenant id, event id or None if duplicate)."""
    tenant_id, secret = _hook_secret(ctx, workspace_id)
    verify_hub_signature(secret, body, signature)  # before anything is parsed
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise InvalidInput("the webhook body is not JSON") from exc
    if not isinstance(data, dict) or not event_key:
        raise InvalidInput("a webhook needs X-Event-Key and a JSON object body")
    if delivery_id is not None and len(delivery_id) > 128:
        raise InvalidInput("X-Request-UUID is too long")
    return tenant_id, record_event(ctx, tenant_id, source="token", delivery_id=delivery_id,
                                   event_key=event_key, data=data)


def _hook_secret(ctx: Context, workspace_id: str) -> tuple[str, str]:
    try:
        workspace_uuid = normalize_uuid(workspace_id)
    except InvalidInput:
        raise AuthError("unknown workspace", code="unknown_workspace") from None
    with ctx.db.session() as s:
        tenant = tenant_for_workspace(s, workspace_uuid)
        inst = binding(s, tenant.id, "token") if tenant else None
        if inst is None or inst.status == "disconnected" or not inst.hook_secret_enc:
            raise AuthError("unknown workspace", code="unknown_workspace")  # same answer as a bad signature
        return tenant.id, ctx.box.decrypt(inst.hook_secret_enc)


CREDENTIAL_WARNING_DAYS = 14


def credential_notice(ctx: Context, tenant_id: str, *, now: datetime | None = None) -> dict | None:
    """What the standalone panel says about the token-mode credential: expired, or expiring within 14 days."""
    now = now or utcnow()
    with ctx.db.session() as s:
        inst = binding(s, tenant_id, "token")
        if inst is None or inst.status == "disconnected":
            return None
        status, expires = inst.status, inst.credential_expires_at
    if status == "credential_expired" or (expires is not None and expires <= now):
        return {"level": "danger", "expires_at": expires,
                "message": "Bitbucket no longer accepts the workspace credential; backups are kept but not "
                           "refreshed. Connect the workspace again with a new token (strongroom connect-workspace)."}
    if expires is not None and (expires - now).days < CREDENTIAL_WARNING_DAYS:
        return {"level": "warning", "expires_at": expires,
                "message": f"The workspace credential expires on {expires:%Y-%m-%d} (in {(expires - now).days} "
                           "days). Create a new token and run strongroom connect-workspace before then."}
    return None
