"""The sandbox's webhook driver: Connect format, headers, JWT, retries and payloads from real git state."""
from __future__ import annotations

import uuid
from email.utils import parsedate_to_datetime
from pathlib import Path

import requests
from atlassian_jwt.url_utils import hash_url

from sandbox import Sandbox


def _only_change(received) -> dict:
    [change] = received.body["data"]["push"]["changes"]
    return change


def test_commit_fires_repo_push_with_real_hashes_and_headers(installed) -> None:
    sb: Sandbox = installed.sandbox
    old = sb.refs("acme", "widget")["refs/heads/main"]
    new = sb.commit("acme", "widget", message="Fix the thing", files={"src/fix.py": "print('fixed')\n"})
    [hook] = installed.webhooks("repo:push")
    assert hook.error is None, hook.error  # the app verified the JWT (aud, iss = clientKey, qsh)
    assert hook.claims["qsh"] == hash_url("POST", "/webhooks") and hook.claims["exp"] - hook.claims["iat"] == 3600
    h = hook.headers
    assert h["User-Agent"] == "Bitbucket-Webhooks/2.0" and h["Content-Type"] == "application/json"
    assert h["X-Event-Key"] == "repo:push" and h["X-Attempt-Number"] == "1"
    uuid.UUID(h["X-Request-Uuid"]), uuid.UUID(h["X-Hook-Uuid"])
    assert parsedate_to_datetime(h["X-Event-Time"]).tzinfo is not None
    body = hook.body
    assert body["event"] == "repo:push" and set(body["data"]) == {"push", "actor", "repository"}
    repo = body["data"]["repository"]
    assert repo["type"] == "repository" and repo["full_name"] == "acme/widget"
    assert repo["workspace"]["slug"] == "acme" and repo["uuid"] == sb.repository("acme", "widget").uuid
    change = _only_change(hook)
    assert change["old"]["type"] == change["new"]["type"] == "branch"
    assert (change["old"]["target"]["hash"], change["new"]["target"]["hash"]) == (old, new)
    assert change["new"]["target"]["parents"][0]["hash"] == old
    assert (change["created"], change["closed"], change["forced"], change["truncated"]) == (False,) * 4
    assert [c["hash"] for c in change["commits"]] == [new]
    assert change["commits"][0]["message"].startswith("Fix the thing")
    assert change["links"]["html"]["href"].startswith(sb.web_url)

    sb.commit("acme", "widget")
    second = installed.webhooks("repo:push")[-1].headers
    assert second["X-Hook-Uuid"] == h["X-Hook-Uuid"] and second["X-Request-Uuid"] != h["X-Request-Uuid"]


def test_force_push_is_forced_with_real_old_and_new(installed) -> None:
    sb: Sandbox = installed.sandbox
    old = sb.refs("acme", "widget")["refs/heads/main"]
    new = sb.force_push("acme", "widget")
    change = _only_change(installed.webhooks("repo:push")[-1])
    assert change["forced"] is True
    assert (change["old"]["target"]["hash"], change["new"]["target"]["hash"]) == (old, new)
    # force back to the old tip: a fast-forward of nothing, but old is no ancestor of the rewrite
    sb.force_push("acme", "widget", to=old)
    change = _only_change(installed.webhooks("repo:push")[-1])
    assert change["forced"] is True and change["new"]["target"]["hash"] == old


def test_new_branch_then_delete(installed) -> None:
    sb: Sandbox = installed.sandbox
    for _ in range(3):
        old_tip = sb.commit("acme", "widget", branch="feature", deliver=False)
    sb.delete_branch("acme", "widget", "feature", deliver=False)
    tip = sb.commit("acme", "widget", branch="feature", parent=old_tip)  # 3 + 3 + 1 commits deep
    created = _only_change(installed.webhooks("repo:push")[-1])
    assert created["old"] is None and created["created"] is True and created["new"]["name"] == "feature"
    assert created["new"]["target"]["hash"] == tip
    assert len(created["commits"]) == 5 and created["truncated"] is True

    sb.delete_branch("acme", "widget", "feature")
    closed = _only_change(installed.webhooks("repo:push")[-1])
    assert closed["new"] is None and closed["closed"] is True and "commits" not in closed
    assert closed["old"]["target"]["hash"] == tip


def test_tag_pushes_are_tag_changes(installed) -> None:
    sb: Sandbox = installed.sandbox
    main = sb.refs("acme", "widget")["refs/heads/main"]
    sb.create_tag("acme", "widget", "v1.0")
    change = _only_change(installed.webhooks("repo:push")[-1])
    assert change["new"]["type"] == "tag" and change["new"]["name"] == "v1.0"
    assert change["new"]["target"]["hash"] == main and change["new"]["message"] is None
    assert change["created"] is True

    oid = sb.create_tag("acme", "widget", "v2.0", annotated=True, message="Second")
    change = _only_change(installed.webhooks("repo:push")[-1])
    assert change["new"]["target"]["hash"] == main != oid
    assert change["new"]["message"].startswith("Second") and change["new"]["tagger"]["raw"]

    sb.commit("acme", "widget", deliver=False)
    sb.move_tag("acme", "widget", "v1.0")
    moved = _only_change(installed.webhooks("repo:push")[-1])
    assert moved["old"]["target"]["hash"] == main and moved["new"]["target"]["hash"] != main
    sb.delete_tag("acme", "widget", "v1.0")
    deleted = _only_change(installed.webhooks("repo:push")[-1])
    assert deleted["new"] is None and deleted["closed"] is True and deleted["old"]["type"] == "tag"


def test_5xx_is_retried_three_times_with_the_same_request_uuid(installed) -> None:
    sb: Sandbox = installed.sandbox
    installed.webhook_statuses = [500, 502, 503]
    sb.commit("acme", "widget")
    calls = installed.webhooks("repo:push")
    assert [c.headers["X-Attempt-Number"] for c in calls] == ["1", "2", "3"]
    assert len({c.headers["X-Request-Uuid"] for c in calls}) == 1
    record = sb.deliveries[-1]
    assert record.attempts == 3 and record.status_codes == [500, 502, 503] and not record.delivered

    installed.webhook_statuses = [500, 200]
    sb.commit("acme", "widget")
    assert sb.deliveries[-1].status_codes == [500, 200] and sb.deliveries[-1].delivered

    installed.webhook_statuses = [404]
    sb.commit("acme", "widget")
    assert sb.deliveries[-1].status_codes == [404]


def test_oversized_payload_is_dropped(installed) -> None:
    sb: Sandbox = installed.sandbox
    before = len(installed.received)
    record = sb.deliver_webhook("acme", "repo:push", {"push": {"changes": []}, "padding": "x" * 300_000})
    assert record.dropped and record.attempts == 0 and not record.delivered
    assert len(installed.received) == before


def test_repo_lifecycle_events(installed, run_git) -> None:
    sb: Sandbox = installed.sandbox
    sb.create_repository("acme", "gadget")
    created = installed.webhooks("repo:created")[-1].body["data"]
    assert created["repository"]["full_name"] == "acme/gadget"
    gadget_uuid = created["repository"]["uuid"]

    sb.rename_repository("acme", "gadget", "gizmo")
    updated = installed.webhooks("repo:updated")[-1].body["data"]
    assert updated["repository"]["uuid"] == gadget_uuid and updated["repository"]["full_name"] == "acme/gizmo"
    assert updated["changes"]["name"] == {"old": "gadget", "new": "gizmo"}
    assert installed.api("GET", "/2.0/repositories/acme/gadget").status_code == 404
    assert installed.api("GET", "/2.0/repositories/acme/gizmo").json()["uuid"] == gadget_uuid

    sb.delete_repository("acme", "gizmo")
    deleted = installed.webhooks("repo:deleted")[-1].body["data"]
    assert deleted["repository"]["uuid"] == gadget_uuid
    assert installed.api("GET", "/2.0/repositories/acme/gizmo").status_code == 404
    token = installed.exchange().json()["access_token"]
    r = requests.get(f"{sb.web_url}/acme/gizmo.git/info/refs", params={"service": "git-upload-pack"},
                     headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 404


def test_notify_push_after_a_plain_git_push(installed, run_git, tmp_path: Path) -> None:
    sb: Sandbox = installed.sandbox
    work = tmp_path / "w"
    run_git("clone", str(sb.repo_path("acme", "widget")), str(work))
    run_git("checkout", "-b", "topic", cwd=work)
    run_git("-c", "user.name=T", "-c", "user.email=t@e.com", "commit", "--allow-empty", "-m", "x", cwd=work)
    run_git("push", "origin", "topic", "HEAD:refs/tags/t1", cwd=work)
    assert not installed.webhooks("repo:push")
    sb.notify_push("acme", "widget")
    changes = installed.webhooks("repo:push")[-1].body["data"]["push"]["changes"]
    assert [(c["new"]["type"], c["new"]["name"]) for c in changes] == [("branch", "topic"), ("tag", "t1")]
    assert sb.notify_push("acme", "widget") is None  # nothing changed since


def test_deliver_false_and_scope_filtered_wildcard(sandbox: Sandbox, app) -> None:
    app.scopes = ["repository"]
    app.hooks = ["*"]
    sandbox.create_workspace("acme")
    sandbox.create_repository("acme", "widget")
    sandbox.install("acme", app.descriptor_url)
    sandbox.commit("acme", "widget", deliver=False)
    assert not app.webhooks()
    sandbox.commit("acme", "widget")
    assert [w.headers["X-Event-Key"] for w in app.webhooks()] == ["repo:push"]
    assert sandbox.deliver_webhook("acme", "pullrequest:created", {"pullrequest": {}}) is None  # no scope


def test_transfer_reaches_both_workspaces(installed) -> None:
    sb: Sandbox = installed.sandbox
    sb.create_workspace("newco")
    sb.transfer_repository("acme", "widget", "newco")
    [hook] = installed.webhooks("repo:transfer")  # only acme's app is installed
    data = hook.body["data"]
    assert data["repository"]["full_name"] == "newco/widget"
    assert data["previous_workspace"]["slug"] == "acme"
    assert installed.api("GET", "/2.0/repositories/acme/widget").status_code == 404


def test_async_delivery_keeps_order(installed) -> None:
    sb: Sandbox = installed.sandbox
    sb.async_delivery = True
    shas = [sb.commit("acme", "widget") for _ in range(3)]
    sb.wait_for_deliveries()
    pushed = [_only_change(w)["new"]["target"]["hash"] for w in installed.webhooks("repo:push")]
    assert pushed == shas
