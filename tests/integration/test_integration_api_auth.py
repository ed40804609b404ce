"""Bearer credentials on /api/v1: operator keys (INTERFACE §3.0) and panel session tokens."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest
import requests

from harness import ROOT, settings_env
from strongroom.operators import create_operator_key, revoke_operator_key
from strongroom.sessions import SESSION_SECONDS, mint_session

pytestmark = pytest.mark.integration


def bearer(stack, token: str, path: str = "/api/v1/installation") -> requests.Response:
    return requests.get(stack.base_url + path, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def test_operator_key_reads_only_its_workspace_and_survives_uninstall(install_workspace, stack):
    a = install_workspace(repos=0)
    b = install_workspace(repos=0)
    issued = create_operator_key(stack.ctx, a.slug, "ops")
    assert bearer(stack, issued.key).json()["workspace"]["slug"] == a.slug
    stack.sandbox.uninstall(a.slug)
    after = bearer(stack, issued.key)
    assert after.status_code == 200 and after.json()["status"] == "uninstalled"
    b_repos = bearer(stack, issued.key, "/api/v1/repositories").json()["values"]
    assert all(r["full_name"].split("/")[0] != b.slug for r in b_repos)
    revoke_operator_key(stack.ctx, issued.id)
    assert bearer(stack, issued.key).status_code == 401


def test_api_key_cli_prints_a_working_key_once(install_workspace, stack):
    ws = install_workspace(repos=0)
    out = subprocess.run([sys.executable, "-m", "strongroom.cli", "api-key", "create", "--workspace", ws.slug,
                          "--label", "cli"], cwd=ROOT, env=settings_env(stack.settings), capture_output=True,
                         text=True, check=True).stdout
    key = out.strip().splitlines()[-1]
    assert key.startswith("sro_") and bearer(stack, key).status_code == 200
    listing = subprocess.run([sys.executable, "-m", "strongroom.cli", "api-key", "list", "--workspace", ws.slug],
                             cwd=ROOT, env=settings_env(stack.settings), capture_output=True, text=True).stdout
    assert key not in listing and "cli" in listing


def test_panel_session_tokens_are_tenant_bound_and_expire(install_workspace, stack):
    ws = install_workspace(repos=0)
    with stack.ctx.db.session() as s:
        from sqlalchemy import select

        from strongroom.store.models import Tenant

        tenant_id = s.scalars(select(Tenant.id).where(Tenant.workspace_uuid == ws.uuid)).one()
    token, _ = mint_session(stack.settings, tenant_id, "user-1")
    assert bearer(stack, token).json()["workspace"]["uuid"] == ws.uuid
    old, _ = mint_session(stack.settings, tenant_id, "user-1", now=time.time() - SESSION_SECONDS - 60)
    assert bearer(stack, old).status_code == 401
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert bearer(stack, forged).status_code == 401
    assert bearer(stack, "sro_not-a-real-key").status_code == 401
