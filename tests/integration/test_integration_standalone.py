"""The standalone panel at /ui/: an operator key opens the panel (any install path); token mode warns
about a credential that expires soon."""
from __future__ import annotations

import json
import re
import secrets
from datetime import timedelta

import pytest
import requests

from strongroom.operators import create_operator_key
from strongroom.store.models import utcnow
from strongroom.tokenmode import TokenCredential, connect_workspace

pytestmark = pytest.mark.integration


def token_workspace(stack, expires_in_days: int | None):
    sb = stack.sandbox
    slug = f"ui-{secrets.token_hex(3)}"
    sb.create_workspace(slug)
    credential = TokenCredential("access_token", sb.tokenmode.issue_workspace_token(slug),
                                 api_base_url=sb.api_url, base_url=sb.web_url)
    expires = utcnow() + timedelta(days=expires_in_days) if expires_in_days is not None else None
    connect_workspace(stack.ctx, slug, credential, expires_at=expires)
    return slug, create_operator_key(stack.ctx, slug, "ui").key


def login(stack, key: str, **headers) -> requests.Response:
    return requests.post(f"{stack.base_url}/ui/", data={"key": key}, headers=headers, timeout=10)


def boot(html: str) -> dict:
    return json.loads(re.search(r'<script id="strongroom-boot" type="application/json">(.*?)</script>', html, re.S)[1])


def test_an_operator_key_opens_the_panel_with_a_session_token(stack):
    slug, key = token_workspace(stack, expires_in_days=200)
    form = requests.get(f"{stack.base_url}/ui/", timeout=10)
    assert form.status_code == 200 and 'name="key"' in form.text
    assert "frame-ancestors 'none'" in form.headers["Content-Security-Policy"]
    page = login(stack, key)
    assert page.status_code == 200 and key not in page.text and "credential-notice" not in page.text
    session = boot(page.text)
    assert session["workspace"]["slug"] == slug and session["renew"] is True
    view = requests.get(f"{stack.base_url}/api/v1/installation", timeout=10,
                        headers={"Authorization": f"Bearer {session['token']}"}).json()
    assert view["path"] == "token" and view["credential_expires_at"]
    assert "atlassian-connect/all.js" not in page.text  # standalone: no Connect JS


def test_a_credential_expiring_within_14_days_is_announced(stack):
    _, key = token_workspace(stack, expires_in_days=9)
    page = login(stack, key)
    assert 'id="credential-notice"' in page.text and "banner-warning" in page.text
    assert re.search(r"expires on \d{4}-\d{2}-\d{2} \(in [89] days\)", page.text)


def test_a_wrong_key_or_a_foreign_form_is_refused(stack):
    _, key = token_workspace(stack, expires_in_days=None)
    wrong = login(stack, "sro_" + secrets.token_urlsafe(32))
    assert wrong.status_code == 401 and 'id="login-error"' in wrong.text and "strongroom-boot" not in wrong.text
    foreign = login(stack, key, Origin="https://evil.example")
    assert foreign.status_code == 403 and "strongroom-boot" not in foreign.text
