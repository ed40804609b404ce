"""The settings panel in a real headless chromium against the real stack (sandbox host, web, worker)."""
from __future__ import annotations

import shlex
from urllib.parse import quote

import pytest
from playwright.sync_api import expect

from harness import git, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def repos(ws) -> dict:
    return {r["slug"]: r for r in ws.api.get("/api/v1/repositories").json()["values"]}


def snapshots(ws, uuid: str) -> list:
    return ws.api.get(f"/api/v1/repositories/{uuid}/snapshots", params="pagelen=100").json()["values"]


def backed_up(stack, ws, slug: str) -> dict:
    def done():
        repo = repos(ws).get(slug)
        snaps = snapshots(ws, repo["uuid"]) if repo and repo["snapshot_count"] else []
        return repo if snaps and snaps[0]["refs"] == stack.sandbox.refs(ws.slug, slug) else None
    return wait_for(done, 90, 0.3, message=f"{slug} backed up")


def shot(page, screenshots, name: str) -> None:
    page.screenshot(path=str(screenshots / f"{name}.png"), full_page=True)


def open_admin(stack, page, ws, signed_page_url):
    page.goto(signed_page_url(stack.base_url, ws, "/panel/admin"))
    expect(page.get_by_role("heading", name="Strongroom Backups")).to_be_visible()
    return page


def protected_workspace(install_workspace, stack, repos_count: int = 3):
    ws = install_workspace(repos=repos_count)
    for i in range(repos_count):
        backed_up(stack, ws, f"repo-{i}")
    return ws


MOVES_OF_MAIN_SECTIONS = """
window.__sectionMoves = 0;
document.addEventListener("DOMContentLoaded", () => {
  new MutationObserver((records) => { window.__sectionMoves += records.length; })
    .observe(document.querySelector("main"), { childList: true });
});
"""


def test_admin_page_loads_with_a_host_signed_jwt(install_workspace, stack, page, signed_page_url, screenshots):
    ws = protected_workspace(install_workspace, stack)
    page.add_init_script(MOVES_OF_MAIN_SECTIONS)
    open_admin(stack, page, ws, signed_page_url)
    expect(page.locator("#summary-text")).to_contain_text("All 3 repositories in scope are protected")
    expect(page.locator("#status-strip")).to_contain_text("Bitbucket is reachable")
    # While Bitbucket is up nothing moves under the user's pointer (only an outage brings Access up).
    assert page.evaluate("window.__sectionMoves") == 0
    for i in range(3):
        switch = page.get_by_role("switch", name=f"Back up {ws.slug}/repo-{i}")
        expect(switch).to_be_checked()
    expect(page.locator("#repo-rows tr").first).to_contain_text("Protected")
    expect(page.locator("#token-once")).to_be_hidden()
    expect(page.locator("#progress")).to_be_hidden()
    shot(page, screenshots, "panel-workspace")
    page.keyboard.press("Tab")  # keyboard: the skip link is the first stop and visible when focused
    expect(page.get_by_role("link", name="Skip to repositories")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#repositories")).to_be_focused()


def test_switching_the_scope_mode(install_workspace, stack, page, signed_page_url, screenshots):
    ws = protected_workspace(install_workspace, stack, 2)
    open_admin(stack, page, ws, signed_page_url)
    page.get_by_role("radio", name="Only the repositories I select").check()
    wait_for(lambda: ws.api.get("/api/v1/installation").json()["scope_mode"] == "selected", message="mode selected")
    expect(page.locator("#summary-text")).to_contain_text("No repositories are selected")
    expect(page.get_by_role("switch", name=f"Back up {ws.slug}/repo-0")).not_to_be_checked()
    assert not any(r["in_scope"] for r in repos(ws).values())
    page.get_by_role("switch", name=f"Back up {ws.slug}/repo-1").check()
    wait_for(lambda: repos(ws)["repo-1"]["in_scope"], message="repo-1 included")
    page.get_by_role("radio", name="Back up all repositories").check()
    wait_for(lambda: all(r["in_scope"] for r in repos(ws).values()), message="all in scope again")
    expect(page.get_by_role("radio", name="Back up all repositories")).to_be_checked()


def test_toggled_off_repository_is_out_of_scope_and_a_push_is_not_synced(install_workspace, stack, page,
                                                                         signed_page_url, screenshots):
    ws = protected_workspace(install_workspace, stack, 2)
    before = repos(ws)["repo-1"]
    open_admin(stack, page, ws, signed_page_url)
    page.get_by_role("switch", name=f"Back up {ws.slug}/repo-1").uncheck()
    wait_for(lambda: repos(ws)["repo-1"]["in_scope"] is False, message="repo-1 out of scope")
    row = page.locator("#repo-rows tr", has=page.get_by_role("switch", name=f"Back up {ws.slug}/repo-1"))
    expect(row).to_contain_text("Not backed up")
    skipped = stack.sandbox.commit(ws.slug, "repo-1", message="not backed up")
    stack.sandbox.commit(ws.slug, "repo-0", message="backed up")
    backed_up(stack, ws, "repo-0")  # the webhooks of both pushes were processed by now
    after = repos(ws)["repo-1"]
    assert after["snapshot_count"] == before["snapshot_count"] and after["in_scope"] is False
    assert skipped not in snapshots(ws, after["uuid"])[0]["refs"].values()
    page.locator("#repo-state").select_option("out_of_scope")
    expect(page.locator("#repo-rows tr")).to_have_count(1)
    expect(page.locator("#repo-rows tr")).to_contain_text("repo-1")


def test_back_up_now_changes_the_state_and_adds_a_snapshot(install_workspace, stack, page,
                                                           signed_page_url, screenshots):
    ws = protected_workspace(install_workspace, stack, 1)
    uuid = repos(ws)["repo-0"]["uuid"]
    count = len(snapshots(ws, uuid))
    sha = stack.sandbox.commit(ws.slug, "repo-0", message="webhook lost", deliver=False)
    open_admin(stack, page, ws, signed_page_url)
    page.get_by_role("button", name="repo-0 – show snapshots").click()
    expect(page.locator("#snapshot-list > li")).to_have_count(count)
    page.get_by_role("button", name=f"Back up {ws.slug}/repo-0 now").click()
    row = page.locator("#repo-rows tr").first
    expect(row).to_contain_text("Backing up")
    expect(page.locator("#snapshot-list > li")).to_have_count(count + 1)
    expect(page.locator("#snapshot-list > li").first).to_contain_text("manual backup")
    expect(page.locator("#snapshot-list > li").first).to_contain_text("refs/heads/main")
    expect(row).to_contain_text("Protected")
    assert snapshots(ws, uuid)[0]["refs"]["refs/heads/main"] == sha
    shot(page, screenshots, "panel-timeline")


def test_access_token_and_the_clone_command_the_page_shows(install_workspace, stack, page, tmp_path,
                                                           signed_page_url, screenshots):
    ws = protected_workspace(install_workspace, stack, 1)
    first = stack.sandbox.refs(ws.slug, "repo-0")["refs/heads/main"]
    stack.sandbox.commit(ws.slug, "repo-0", message="second state")
    backed_up(stack, ws, "repo-0")
    open_admin(stack, page, ws, signed_page_url)
    page.get_by_role("button", name="repo-0 – show snapshots").click()
    expect(page.locator("#token-once")).to_be_hidden()
    page.get_by_label("Token label").fill("incident")
    page.get_by_role("button", name="Create token").click()
    expect(page.locator("#token-once")).to_be_visible()
    token = page.locator("#token-value").text_content()
    assert token and token.startswith("srt_")
    expect(page.locator("#clone-command")).to_contain_text(token)
    latest = page.locator("#clone-command").text_content()
    git(*shlex.split(latest)[1:], str(tmp_path / "latest"))
    assert git("rev-parse", "HEAD", cwd=tmp_path / "latest").stdout.strip() == \
        stack.sandbox.refs(ws.slug, "repo-0")["refs/heads/main"]
    oldest = page.locator("#snapshot-list > li .clone-cmd").last.text_content()
    git(*shlex.split(oldest)[1:], str(tmp_path / "oldest"))
    assert git("rev-parse", "HEAD", cwd=tmp_path / "oldest").stdout.strip() == first
    expect(page.get_by_role("button", name="Revoke token incident")).to_be_enabled()
    page.locator("#token-value").evaluate("n => n.textContent = 'srt_…(shown once)'")  # keep secrets out of docs
    page.locator("#clone-command").evaluate("n => n.textContent = n.textContent.replace(/srt_[^@]+/, '<token>')")
    page.locator("#access").screenshot(path=str(screenshots / "panel-access.png"))
    page.get_by_role("button", name="Revoke token incident").click()
    expect(page.locator("#token-rows")).to_contain_text("Revoked")
    assert git(*shlex.split(latest)[1:], str(tmp_path / "refused"), check=False).returncode != 0


def test_repository_page_shows_one_repository(install_workspace, stack, page, signed_page_url, screenshots):
    ws = protected_workspace(install_workspace, stack, 2)
    uuid = repos(ws)["repo-1"]["uuid"]
    page.goto(signed_page_url(stack.base_url, ws, "/panel/repository", f"repoUuid={quote(uuid, safe='')}"))
    expect(page.locator("#repo-rows tr")).to_have_count(1)
    expect(page.locator("#repo-rows tr")).to_contain_text("repo-1")
    expect(page.locator("#timeline-title")).to_have_text(f"Snapshots of {ws.slug}/repo-1")
    expect(page.locator("#scope")).to_be_hidden()
    shot(page, screenshots, "panel-repository")


def test_when_bitbucket_is_down_the_clone_instructions_come_first(install_workspace, stack, page,
                                                                  signed_page_url, screenshots):
    ws = protected_workspace(install_workspace, stack, 1)
    stack.sandbox.set_down(True)
    try:
        open_admin(stack, page, ws, signed_page_url)
        expect(page.locator("#status-strip")).to_contain_text("Bitbucket is unreachable", timeout=90_000)
    finally:
        stack.sandbox.set_down(False)
    assert page.evaluate("document.querySelector('#status-strip').nextElementSibling.id") == "access"
    expect(page.locator("#down-steps")).to_be_visible()
    shot(page, screenshots, "panel-bitbucket-down")


def test_a_tampered_jwt_shows_an_error(install_workspace, stack, page, signed_page_url, screenshots):
    ws = install_workspace(repos=1)
    url = signed_page_url(stack.base_url, ws, "/panel/admin")
    tampered = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
    response = page.goto(tampered)
    assert response.status == 401
    expect(page.get_by_role("alert")).to_contain_text("Strongroom cannot open this page")
    expect(page.locator("#repo-rows")).to_have_count(0)
    assert ws.slug not in page.content()
    page.locator("#panel-error").screenshot(path=str(screenshots / "panel-error.png"))

