"""Least privilege on Connect: the installation may write (for restores), its everyday tokens may not."""
from __future__ import annotations

from sqlalchemy import select

from harness import clone_env, git
from strongroom.store.models import Installation
from test_integration_backup import wait_backed_up


def test_the_cached_everyday_token_reads_but_cannot_push(install_workspace, stack, tmp_path):
    ws = install_workspace(repos=1)
    wait_backed_up(stack, ws, "repo-0")
    with stack.ctx.db.session() as s:
        sealed = s.scalars(select(Installation.token_enc).where(Installation.client_key == ws.client_key)).one()
    key, _, token = stack.ctx.box.decrypt(sealed).partition("\n")
    assert key.endswith("|scope=repository")
    assert stack.sandbox.tokens.lookup(token).scopes == ("repository",)
    # What the installation itself was granted is more: the descriptor asks for write and admin.
    assert {"repository:write", "repository:admin"} <= set(stack.sandbox.installation(ws.slug).scopes)

    url = f"{stack.sandbox.web_url}/{ws.slug}/repo-0.git"
    git("clone", url, str(tmp_path / "work"), env=clone_env(token))
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "--allow-empty", "-m", "should not land",
        cwd=tmp_path / "work")
    pushed = git("push", "origin", "HEAD:refs/heads/intruder", cwd=tmp_path / "work", env=clone_env(token),
                 check=False)
    assert pushed.returncode != 0 and "403" in pushed.stderr
    assert "refs/heads/intruder" not in stack.sandbox.refs(ws.slug, "repo-0")
