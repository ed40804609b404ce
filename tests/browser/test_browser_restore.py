"""Restores, workspace recovery, drills, bundles and the audit log in the panel, in a real headless chromium.

Every flow goes plan first, then confirm, then progress; the host is checked unchanged after a plan.
"""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from harness import git, wait_for
from test_browser_panel import backed_up, open_admin, protected_workspace, repos, shot, snapshots

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def open_snapshots(page, slug: str) -> None:
    page.get_by_role("button", name=f"{slug} – show snapshots").click()
    expect(page.locator("#timeline")).to_be_visible()


def snapshot_item(page, snap_id: str):
    return page.locator(f'#snapshot-list > li[data-id="{snap_id}"]')


def test_a_deleted_branch_is_planned_then_restored_under_a_new_name(install_workspace, stack, page,
                                                                    signed_page_url, screenshots):
    sb = stack.sandbox
    ws = install_workspace(repos=1)
    sb.commit(ws.slug, "repo-0", branch="feature", message="feature work")
    repo = backed_up(stack, ws, "repo-0")
    snap = snapshots(ws, repo["uuid"])[0]
    feature = snap["refs"]["refs/heads/feature"]
    sb.delete_branch(ws.slug, "repo-0", "feature")
    backed_up(stack, ws, "repo-0")
    before = sb.refs(ws.slug, "repo-0")
    restored = f"refs/heads/restored/{snap['taken_at'][:10]}/feature"

    open_admin(stack, page, ws, signed_page_url)
    open_snapshots(page, "repo-0")
    snapshot_item(page, snap["id"]).get_by_role("button", name="Restore…").click()
    expect(page.locator("#restore-title")).to_be_focused()
    expect(page.get_by_role("radio", name="The same repository on Bitbucket")).to_be_checked()
    page.get_by_role("button", name="Select none").click()
    page.get_by_role("checkbox", name="refs/heads/feature").check()
    page.get_by_role("button", name="Show the restore plan").click()
    plan = page.locator("#restore-plan-rows tr")
    expect(plan).to_have_count(1)
    expect(plan).to_contain_text("Create")
    expect(plan).to_contain_text(restored)
    expect(page.locator("#restore-plan-summary")).to_contain_text("1 ref created")
    assert sb.refs(ws.slug, "repo-0") == before  # planning changed nothing on the host
    shot(page, screenshots, "panel-restore-plan")

    # Changing the form after planning withdraws the plan: only what was shown can be confirmed.
    page.get_by_role("radio", name="Put them back to their value in the snapshot").check()
    expect(page.locator("#restore-plan")).to_be_hidden()
    page.get_by_role("radio", name="Keep them; restore next to them").check()
    page.get_by_role("button", name="Show the restore plan").click()
    page.get_by_role("button", name="Restore now").click()
    expect(page.locator("#restore-job-status")).to_contain_text("Restored into", timeout=90_000)
    assert sb.refs(ws.slug, "repo-0") == {**before, restored: feature}

    page.get_by_role("radio", name="Put them back to their value in the snapshot").check()
    page.get_by_role("button", name="Show the restore plan").click()
    expect(page.locator("#restore-plan-rows tr")).to_contain_text("refs/heads/feature")
    page.get_by_role("button", name="Restore now").click()
    expect(page.locator("#restore-job-status")).to_contain_text("Restored into", timeout=90_000)
    assert sb.refs(ws.slug, "repo-0") == {**before, restored: feature, "refs/heads/feature": feature}
    expect(page.locator("#audit-rows tr").first).to_contain_text("Restore")
    actions = [e["action"] for e in ws.api.get("/api/v1/audit", params="action=restore").json()["values"]]
    assert actions == ["restore", "restore"]


def test_a_deleted_repository_can_only_go_to_a_new_repository(install_workspace, stack, page, signed_page_url):
    sb = stack.sandbox
    ws = protected_workspace(install_workspace, stack, 1)
    repo = repos(ws)["repo-0"]
    snap = snapshots(ws, repo["uuid"])[0]
    sb.delete_repository(ws.slug, "repo-0")
    wait_for(lambda: repos(ws)["repo-0"]["deleted_upstream"], 30, message="deleted flag")
    open_admin(stack, page, ws, signed_page_url)
    open_snapshots(page, "repo-0")
    snapshot_item(page, snap["id"]).get_by_role("button", name="Restore…").click()
    expect(page.get_by_role("radio", name="The same repository on Bitbucket")).to_be_disabled()
    expect(page.get_by_role("radio", name="A new repository in the workspace")).to_be_checked()
    page.get_by_label("Name of the new repository").fill("repo-0-back")
    page.get_by_role("button", name="Show the restore plan").click()
    expect(page.locator("#restore-plan-summary")).to_contain_text(f"the new repository {ws.slug}/repo-0-back")
    expect(page.locator("#restore-plan-settings")).to_contain_text("private")
    expect(page.locator("#restore-plan-settings")).to_contain_text("main branch main (pushed first)")
    assert sb.find_repository(sb.workspace(ws.slug), "repo-0-back") is None
    page.get_by_role("button", name="Restore now").click()
    expect(page.locator("#restore-job-status")).to_contain_text("Restored into", timeout=90_000)
    assert sb.refs(ws.slug, "repo-0-back") == snap["refs"]


def test_workspace_recovery_plans_then_shows_progress_per_repository(install_workspace, stack, page,
                                                                     signed_page_url, screenshots):
    sb = stack.sandbox
    ws = protected_workspace(install_workspace, stack, 2)
    refs = {slug: snapshots(ws, view["uuid"])[0]["refs"] for slug, view in repos(ws).items()}
    for slug in refs:
        sb.delete_repository(ws.slug, slug)
    wait_for(lambda: all(r["deleted_upstream"] for r in repos(ws).values()), 30, message="deleted flags")
    open_admin(stack, page, ws, signed_page_url)
    expect(page.locator("#summary-text")).to_contain_text("2 repositories were deleted on Bitbucket")
    page.locator("#recovery-which").select_option("deleted")
    page.locator("#recovery-preview").click()
    rows = page.locator("#recovery-plan-rows tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("(recreated)")
    expect(page.locator("#recovery-plan-summary")).to_contain_text("2 repositories to restore")
    assert all(sb.find_repository(sb.workspace(ws.slug), slug) is None for slug in refs)
    page.get_by_role("button", name="Start the recovery").click()
    expect(page.locator("#recovery-job-status")).to_contain_text("Recovered all 2 repositories", timeout=120_000)
    expect(page.locator("#recovery-job-rows tr")).to_have_count(2)
    expect(page.locator("#recovery-job-rows")).not_to_contain_text("Failed")
    for slug, expected in refs.items():
        assert sb.refs(ws.slug, slug) == expected
    shot(page, screenshots, "panel-recovery")
    expect(page.locator("#audit-rows tr").first).to_contain_text("Recovery")


def test_verify_now_records_when_a_repository_was_proven_restorable(install_workspace, stack, page,
                                                                    signed_page_url):
    ws = protected_workspace(install_workspace, stack, 1)
    open_admin(stack, page, ws, signed_page_url)
    row = page.locator("#repo-rows tr").first
    expect(row).to_contain_text("Not verified yet")
    open_snapshots(page, "repo-0")
    expect(page.locator("#verify-status")).to_contain_text("Not verified yet")
    page.get_by_role("button", name="Verify now").click()
    expect(page.locator("#verify-status")).to_contain_text("Proven restorable", timeout=90_000)
    expect(row).to_contain_text("Proven restorable")
    view = repos(ws)["repo-0"]
    assert view["last_verify_ok"] is True and view["last_verified_at"]
    expect(page.locator("#audit-rows tr").first).to_contain_text("Verification")


def test_a_snapshot_bundle_downloads_verifies_and_clones(install_workspace, stack, page, signed_page_url, tmp_path):
    ws = protected_workspace(install_workspace, stack, 1)
    repo = repos(ws)["repo-0"]
    snap = snapshots(ws, repo["uuid"])[0]
    open_admin(stack, page, ws, signed_page_url)
    open_snapshots(page, "repo-0")
    with page.expect_download() as info:
        snapshot_item(page, snap["id"]).get_by_role("button", name="Download bundle").click()
    download = info.value
    assert download.suggested_filename == f"repo-0-{snap['id']}.bundle"
    path = tmp_path / download.suggested_filename
    download.save_as(str(path))
    git("bundle", "verify", str(path))
    git("clone", "--mirror", str(path), str(tmp_path / "clone"))
    heads = git("for-each-ref", "--format=%(refname) %(objectname)", cwd=tmp_path / "clone").stdout.split("\n")
    assert dict(line.split() for line in heads if line) == snap["refs"]
    expect(page.locator("#audit-rows tr").first).to_contain_text("Export")


def test_the_audit_log_lists_token_and_scope_changes_with_a_filter(install_workspace, stack, page, signed_page_url):
    ws = protected_workspace(install_workspace, stack, 1)
    open_admin(stack, page, ws, signed_page_url)
    expect(page.locator("#audit-empty")).to_be_visible()
    page.get_by_label("Token label").fill("auditors")
    page.get_by_role("button", name="Create token").click()
    expect(page.locator("#audit-rows tr").first).to_contain_text("Token created")
    expect(page.locator("#audit-rows tr").first).to_contain_text("“auditors”")
    page.get_by_role("switch", name=f"Back up {ws.slug}/repo-0").uncheck()
    expect(page.locator("#audit-rows tr").first).to_contain_text("Repository scope")
    expect(page.locator("#audit-rows tr").first).to_contain_text("not backed up")
    page.locator("#audit-action").select_option("access_token.create")
    expect(page.locator("#audit-rows tr")).to_have_count(1)
    expect(page.locator("#audit-rows tr")).to_contain_text("auditors")
