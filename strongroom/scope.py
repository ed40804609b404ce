"""Which repositories are backed up: a workspace mode plus an explicit per-repository choice."""
from __future__ import annotations

from sqlalchemy import and_, or_
from sqlalchemy.sql.elements import ColumnElement

from .errors import InvalidInput
from .store.models import Repository, Tenant

MODES = ("all", "selected")


def in_scope(mode: str, choice: str | None) -> bool:
    """All: everything not excluded. Selected: only what is included."""
    if choice == "exclude":
        return False
    if choice == "include":
        return True
    return mode == "all"


def in_scope_clause(mode: str) -> ColumnElement[bool]:
    """The same rule as a SQL condition on Repository, for listing and fan-out."""
    if mode == "all":
        return or_(Repository.scope_choice.is_(None), Repository.scope_choice != "exclude")
    return and_(Repository.scope_choice.is_not(None), Repository.scope_choice == "include")


def should_sync(tenant: Tenant, repo: Repository) -> bool:
    """In scope and still present upstream."""
    return in_scope(tenant.scope_mode, repo.scope_choice) and not repo.deleted_upstream


def set_mode(tenant: Tenant, mode: str) -> None:
    """Switch the workspace mode; explicit per-repository choices are kept."""
    if mode not in MODES:
        raise InvalidInput(f"mode must be one of {', '.join(MODES)}")
    tenant.scope_mode = mode


def set_choice(repo: Repository, included: bool) -> None:
    """Include or exclude one repository. Never touches its existing backups."""
    repo.scope_choice = "include" if included else "exclude"


__all__ = ["MODES", "in_scope", "in_scope_clause", "should_sync", "set_mode", "set_choice"]
