"""The standalone panel in headless chromium: sign in with an operator key, see the workspace and the
credential warning of token mode."""
from __future__ import annotations

import secrets
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from harness import wait_for
from strongroom.operators import create_operator_key
from strongroom.store.models import utcnow
from strongroom.tokenmode import TokenCredential, connect_workspace
from tenant_api import OperatorApi, wait_backed_up

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def test_operator_key_sign_in_shows_the_panel_and_the_expiry_warning(stack, page, screenshots):
    from workers.enqueue import CeleryDispatcher

    sb = stack.sandbox
    slug = f"ui-{secrets.token_hex(3)}"
    sb.create_workspace(slug)
    sb.create_repository(slug, "repo-0", commits=2)
    credential = TokenCredential("access_token", sb.tokenmode.issue_workspace_token(slug), api_base_url=sb.api_url,
                                 base_url=sb.web_url)
    result = connect_workspace(stack.ctx, slug, credential, expires_at=utcnow() + timedelta(days=5))
    CeleryDispatcher(stack.settings).run_job(result.job_id)
    key = create_operator_key(stack.ctx, slug, "browser").key
    wait_backed_up(sb, OperatorApi(stack.base_url, key), slug, "repo-0")
    page.goto(f"{stack.base_url}/ui/")
    page.get_by_label("Operator key").fill(key)
    page.get_by_role("button", name="Open the panel").click()
    expect(page.get_by_role("heading", name="Strongroom Backups")).to_be_visible()
    expect(page.locator("#credential-notice")).to_contain_text("expires on")
    expect(page.get_by_role("switch", name=f"Back up {slug}/repo-0")).to_be_checked()
    expect(page.locator("#summary-text")).to_contain_text("protected")
    wait_for(lambda: key not in page.content(), 5)
    page.screenshot(path=str(screenshots / "standalone-panel.png"), full_page=True)
