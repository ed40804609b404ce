"""The Connect install/uninstall rules (lifecycle callbacks), independent of the web framework."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import select

from .auth import SignedRequest, verify_with_secret
from .connect.jwt import extract_token, read_unverified_claims
from .connect.payloads import LifecyclePayload, parse_lifecycle_payload
from .context import Context
from .errors import AuthError, CredentialRejected, Forbidden, StrongroomError
from .host.client import ConnectCredentials, HostClient, MemoryTokenCache
from .jobs import create_job
from .store.models import Installation, Tenant, utcnow

log = logging.getLogger(__name__)
INSTALL_HOST_TIMEOUT = 4.0  # two host calls must fit in Bitbucket's 10 s lifecycle timeout


@dataclass(frozen=True)
class InstallResult:
    installation_id: str
    tenant_id: str
    job_id: str | None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def check_allowed_host(ctx: Context, payload: LifecyclePayload) -> None:
    """Only hosts on STRONGROOM_ALLOWED_HOSTS may install (both baseUrl and baseApiUrl)."""
    allowed = {_origin(h) for h in ctx.settings.allowed_hosts}
    for url in (payload.base_url, payload.base_api_url):
        if _origin(url) not in allowed:
            raise Forbidden(f"host {_origin(url)} is not allowed to install this add-on", code="host_not_allowed")


def _probe_host(ctx: Context, payload: LifecyclePayload) -> dict:
    """Prove the credentials with a token exchange and learn the workspace; store nothing."""
    creds = ConnectCredentials(app_key=ctx.settings.app_key, client_key=payload.client_key,
                               shared_secret=payload.shared_secret or "", base_url=payload.base_url,
                               base_api_url=payload.base_api_url)
    client = HostClient(creds, token_cache=MemoryTokenCache(), timeout=INSTALL_HOST_TIMEOUT, max_retries=0)
    try:
        client.verify_credentials()
        return client.get_workspace(payload.workspace_uuid)
    except CredentialRejected as exc:
        raise AuthError("the host refused the installation's credentials", code="credentials_rejected") from exc
    except StrongroomError as exc:
        raise AuthError(f"could not verify the installation with the host: {exc.code}",
                        code="host_verification_failed") from exc


def _verify_install_token(ctx: Context, req: SignedRequest, payload: LifecyclePayload,
                          existing_secret: str | None) -> None:
    token = extract_token(req.authorization, req.query_args)
    if existing_secret is not None:
        # A known clientKey: only a JWT signed with the *stored* secret may change anything.
        if not token:
            raise AuthError("re-installation must be signed with the existing shared secret", code="missing_token")
        secret = existing_secret
    elif token:
        secret = ctx.settings.app_secret or payload.shared_secret or ""
    else:
        return  # first installs may be unsigned; the credential probe below is the proof
    if read_unverified_claims(token).get("iss") != payload.client_key:
        raise AuthError("token issuer does not match the clientKey", code="issuer_mismatch")
    verify_with_secret(ctx, req, token, secret, payload.client_key)


def handle_installed(ctx: Context, req: SignedRequest, body: bytes) -> InstallResult:
    """Validate, verify and apply an `installed` callback; nothing is stored unless all checks pass."""
    payload = parse_lifecycle_payload(body, "installed")
    check_allowed_host(ctx, payload)
    with ctx.db.session() as s:
        inst = s.scalars(select(Installation).where(Installation.client_key == payload.client_key)).first()
        existing_secret = ctx.box.decrypt(inst.secret_enc) if inst and inst.secret_enc else None
        was_active = bool(inst and inst.status == "active")
    _verify_install_token(ctx, req, payload, existing_secret)
    workspace = _probe_host(ctx, payload)
    return _store_installation(ctx, payload, workspace, start_backup=not was_active)


def _store_installation(ctx: Context, payload: LifecyclePayload, workspace: dict,
                        start_backup: bool) -> InstallResult:
    with ctx.db.session() as s:
        tenant = s.scalars(select(Tenant).where(Tenant.workspace_uuid == payload.workspace_uuid)).first()
        if tenant is None:
            tenant = Tenant(workspace_uuid=payload.workspace_uuid, workspace_slug="", workspace_name="")
            s.add(tenant)
        tenant.workspace_slug = workspace.get("slug") or payload.principal_username or tenant.workspace_slug
        tenant.workspace_name = workspace.get("name") or payload.principal_display_name or tenant.workspace_slug
        s.flush()
        inst = s.scalars(select(Installation).where(Installation.client_key == payload.client_key)).first()
        if inst is None:
            inst = Installation(tenant_id=tenant.id, path="connect", client_key=payload.client_key)
            s.add(inst)
        inst.tenant_id = tenant.id
        inst.app_key = payload.key or ctx.settings.app_key
        inst.secret_enc = ctx.box.encrypt(payload.shared_secret or "")
        inst.base_url, inst.base_api_url = payload.base_url, payload.base_api_url
        inst.token_enc, inst.token_expires_at = None, None
        if inst.status != "active":
            inst.installed_at, inst.uninstalled_at = utcnow(), None
        inst.status = "active"
        inst.details_json = json.dumps({"principal": payload.raw.get("principal", {})})
        s.flush()
        job_id = create_job(s, tenant.id, kind="backup_all", trigger="install").id if start_backup else None
        result = InstallResult(installation_id=inst.id, tenant_id=tenant.id, job_id=job_id)
    log.info("installation %s active for workspace %s", result.installation_id, payload.workspace_uuid)
    return result


def handle_uninstalled(ctx: Context, req: SignedRequest, body: bytes) -> str:
    """Disable the installation (backups are kept); requires a JWT signed with the stored secret."""
    payload = parse_lifecycle_payload(body, "uninstalled")
    with ctx.db.session() as s:
        inst = s.scalars(select(Installation).where(Installation.client_key == payload.client_key)).first()
        if inst is None or not inst.secret_enc:
            raise AuthError("unknown installation", code="unknown_installation")
        secret = ctx.box.decrypt(inst.secret_enc)
    token = extract_token(req.authorization, req.query_args)
    if not token:
        raise AuthError("uninstall must be signed by the host", code="missing_token")
    if read_unverified_claims(token).get("iss") != payload.client_key:
        raise AuthError("token issuer does not match the clientKey", code="issuer_mismatch")
    verify_with_secret(ctx, req, token, secret, payload.client_key)
    with ctx.db.session() as s:
        inst = s.scalars(select(Installation).where(Installation.client_key == payload.client_key)).one()
        inst.status, inst.uninstalled_at = "uninstalled", utcnow()
        inst.token_enc, inst.token_expires_at = None, None
        return inst.id
