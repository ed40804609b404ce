"""Bindings of a tenant to an install path (token credential, Forge install) and their credential state.

A refused credential never deletes anything: token mode turns ``credential_expired`` until a new
credential is set; Forge drops its cached system token and waits for the next tick, and only a
refusal after a long silence (no tick for several intervals) marks the binding ``disconnected``.
"""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from .config import Settings
from .store.models import Installation, Tenant, utcnow

TOKEN_REFUSED = ("Bitbucket refused the workspace credential (expired or revoked); backups are kept. "
                 "Set a new one with `strongroom connect-workspace` to resume.")
FORGE_REFUSED = ("Bitbucket refused the Forge app's system token; backups are kept and syncing resumes "
                 "with the next token Forge sends.")


def tenant_for_workspace(s: Session, workspace_uuid: str) -> Tenant | None:
    """The tenant of a workspace UUID (normalised ``{uuid}``)."""
    return s.scalars(select(Tenant).where(Tenant.workspace_uuid == workspace_uuid)).first()


def binding(s: Session, tenant_id: str, path: str) -> Installation | None:
    """The tenant's binding on ``path`` (``token`` or ``forge``): one row per tenant and path, rebound in place."""
    return s.scalars(select(Installation).where(Installation.tenant_id == tenant_id, Installation.path == path)
                     .order_by(Installation.installed_at.desc())).first()


def forge_silent(settings: Settings, inst: Installation) -> bool:
    """True when Forge has not called for more than the configured number of tick intervals."""
    limit = timedelta(seconds=settings.forge_tick_interval_seconds * settings.forge_silent_ticks)
    return inst.last_contact_at is None or utcnow() - inst.last_contact_at > limit


def credential_refused(s: Session, settings: Settings, installation_id: str) -> str | None:
    """Record that the host refused this binding's credential; returns the message for ``last_error``."""
    inst = s.get(Installation, installation_id)
    if inst is None:
        return None
    if inst.path == "token":
        if inst.status == "active":
            inst.status = "credential_expired"
        return TOKEN_REFUSED
    if inst.path == "forge":
        inst.token_enc, inst.token_expires_at = None, None
        if inst.status == "active" and forge_silent(settings, inst):
            inst.status, inst.uninstalled_at = "disconnected", utcnow()
        return FORGE_REFUSED
    return None
