"""Test helpers shared by the token-mode and Forge tests: /api/v1 with an operator key, and waiting for backups."""
from __future__ import annotations

from urllib.parse import quote

import requests

from harness import clone_env, git, show_ref, sync_settled, wait_for
from strongroom.operators import create_operator_key


class OperatorApi:
    """Calls Strongroom's /api/v1 with an operator key (works on every install path).

    ``ctx`` (the stack's Context) lets ``wait_backed_up`` also check, in the database, that no sync
    is still requested or running, which the API cannot tell."""

    def __init__(self, base_url: str, key: str, ctx=None) -> None:
        self.base_url, self.key, self.ctx = base_url.rstrip("/"), key, ctx

    @classmethod
    def for_workspace(cls, stack, workspace: str) -> "OperatorApi":
        return cls(stack.base_url, create_operator_key(stack.ctx, workspace, "tests").key, stack.ctx)

    def request(self, method: str, path: str, *, json_body=None, params: str = "") -> requests.Response:
        target = quote(path, safe="/-._~") + (f"?{params}" if params else "")
        return requests.request(method, self.base_url + target, json=json_body, timeout=30,
                                headers={"Authorization": f"Bearer {self.key}"})

    def get(self, path: str, params: str = "") -> requests.Response:
        return self.request("GET", path, params=params)

    def post(self, path: str, json_body=None) -> requests.Response:
        return self.request("POST", path, json_body=json_body)

    def repos(self) -> dict:
        return {r["slug"]: r for r in self.get("/api/v1/repositories").json()["values"]}

    def snapshots(self, uuid: str) -> list:
        return self.get(f"/api/v1/repositories/{uuid}/snapshots", params="pagelen=100").json()["values"]

    def installation(self) -> dict:
        return self.get("/api/v1/installation").json()

    def access_token(self) -> str:
        response = self.post("/api/v1/access-tokens", {"label": "tests", "expires_in_days": 7})
        assert response.status_code == 201, response.text
        return response.json()["token"]


def wait_backed_up(sandbox, api: OperatorApi, workspace: str, slug: str, timeout: float = 60) -> dict:
    """Wait until the newest snapshot equals the sandbox's live refs and the repository is settled.

    A push can start a follow-up round after the snapshot that already holds its tips (and between
    two rounds the repository reads "ok"), so the view is returned only once no round runs and (with
    ``api.ctx``, see ``harness.sync_settled``) none is requested or about to be; the view is read again
    after those checks and must not have changed, so the state and snapshot_count returned are the
    settled ones."""
    def done():
        repo = api.repos().get(slug)
        if not repo or not repo["snapshot_count"] or repo["state"] == "syncing":
            return None
        snaps = api.snapshots(repo["uuid"])
        if not snaps or snaps[0]["refs"] != sandbox.refs(workspace, slug):
            return None
        if api.ctx is not None and not sync_settled(api.ctx, repo["uuid"]):
            return None
        return repo if api.repos().get(slug) == repo else None
    return wait_for(done, timeout, 0.2, message=f"{slug} backed up to the live state")


def push_then_force_push_keeps_the_earlier_snapshot(stack, api: OperatorApi, workspace: str, slug: str,
                                                    dest) -> None:
    """A push is backed up as a "push" snapshot; after a force-push over it, that snapshot still clones
    exactly as it was (the same on every install path)."""
    sb = stack.sandbox
    uuid = api.repos()[slug]["uuid"]
    sha = sb.commit(workspace, slug, message="pushed")
    wait_backed_up(sb, api, workspace, slug)
    newest = api.snapshots(uuid)[0]
    assert newest["refs"]["refs/heads/main"] == sha and newest["trigger"] == "push"
    before = sb.refs(workspace, slug)
    sb.force_push(workspace, slug)
    wait_backed_up(sb, api, workspace, slug)
    url = f"{stack.base_url}/git/{workspace}/{slug}/snapshots/{newest['id']}.git"
    git("clone", "--mirror", url, str(dest), env=clone_env(api.access_token()))
    assert show_ref(dest) == before
