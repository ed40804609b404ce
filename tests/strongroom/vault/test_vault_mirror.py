"""Mirror sync: exact heads/tags, keep refs that survive anything upstream does, and layout."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from strongroom.errors import InvalidInput, RepositoryGone
from strongroom.vault import KEEP_PREFIX, Vault

from test_vault_support import REPOSITORY, WORKSPACE, Git, Upstream, git, mirror, upstream, vault  # noqa: F401


def _harsh_gc(git: Git, repo: Path) -> None:
    """What a careless operator might run: drop reflogs and prune every unreachable object now."""
    git("reflog", "expire", "--expire=now", "--expire-unreachable=now", "--all", cwd=repo)
    git("gc", "--quiet", "--prune=now", cwd=repo)


def test_mirror_path_is_keyed_by_uuids_without_braces(vault: Vault):
    path = vault.mirror_path(WORKSPACE, REPOSITORY.upper())
    assert path == vault.root / "6d5c7a3e-0b8e-4f57-9a55-2f0cf6f0a001" / "1b2c3d4e-5f60-4718-8293-a4b5c6d7e8f9.git"
    assert vault.mirror_path(WORKSPACE.strip("{}"), REPOSITORY) == path
    with pytest.raises(InvalidInput):
        vault.mirror_path("../../etc", REPOSITORY)


def test_open_creates_a_bare_repository_with_safe_config(vault: Vault, git: Git):
    path = vault.mirror_path(WORKSPACE, REPOSITORY)
    mirror = vault.open(path)
    assert git("rev-parse", "--is-bare-repository", cwd=path).strip() == "true"
    config = dict(line.split(" ", 1) for line in git("config", "--list", "--local", "--null", cwd=path)
                  .replace("\n", " ").split("\0") if line)
    assert config["gc.auto"] == "0"
    assert config["core.logallrefupdates"] == "always"
    assert config["uploadpack.hiderefs"] == "refs/strongroom"
    assert config["http.receivepack"] == "false"
    assert config["uploadpack.allowanysha1inwant"] == "false"
    assert config["core.fsync"] == "objects,reference,derived-metadata"  # git 2.39 accepts all three
    warnings = git("rev-parse", "--git-dir", cwd=path)
    assert "warning" not in warnings
    assert vault.open(path).path == mirror.path  # idempotent
    assert list(vault.mirrors()) == [path]
    with pytest.raises(InvalidInput):
        vault.open(vault.root.parent / "elsewhere.git")


def test_first_sync_mirrors_heads_and_tags_exactly(upstream: Upstream, mirror, git: Git):
    result = mirror.sync(upstream.url, None)
    expected = upstream.refs()
    assert result.after == expected == mirror.live_refs()
    assert result.before == {} and result.changed
    assert result.changes == {ref: (None, oid) for ref, oid in expected.items()}
    # An annotated tag is recorded as the tag object, exactly as `git show-ref` prints it.
    tag = mirror.live_refs()["refs/tags/v1.0"]
    assert git("cat-file", "-t", tag, cwd=mirror.path).strip() == "tag"
    assert tag == git("show-ref", "--hash", "refs/tags/v1.0", cwd=upstream.origin).strip()
    assert mirror.kept_oids() == set(expected.values())
    assert mirror.ls_remote(upstream.url, None) == expected
    assert git("symbolic-ref", "HEAD", cwd=mirror.path).strip() == "refs/heads/main"


def test_second_sync_without_upstream_changes_reports_nothing(upstream: Upstream, mirror):
    mirror.sync(upstream.url, None)
    again = mirror.sync(upstream.url, None)
    assert not again.changed and again.changes == {}
    assert again.before == again.after == upstream.refs()


def test_force_push_deletions_and_moved_tags_never_lose_an_old_tip(upstream: Upstream, mirror, git: Git):
    mirror.sync(upstream.url, None)
    old = mirror.live_refs()
    old_main_parent = git("rev-parse", f"{old['refs/heads/main']}~1", cwd=mirror.path).strip()
    upstream.reset_hard("main", f"{old['refs/heads/main']}~1")   # rewrite main's last commit away
    rewritten = upstream.commit("main")
    upstream.push("main", force=True)
    upstream.delete("refs/heads/feature")                         # delete a branch
    upstream.delete("refs/tags/light")                            # delete a lightweight tag
    upstream.tag("v1.0", rewritten, annotated=True, force=True)    # move an annotated tag
    upstream.push("refs/tags/v1.0", force=True)

    result = mirror.sync(upstream.url, None)
    assert result.after == upstream.refs()
    assert "refs/heads/feature" not in result.after and "refs/tags/light" not in result.after
    assert result.changes["refs/heads/feature"] == (old["refs/heads/feature"], None)
    assert result.changes["refs/heads/main"] == (old["refs/heads/main"], rewritten)

    _harsh_gc(git, mirror.path)
    for oid in (*old.values(), old_main_parent):
        assert git.ok("cat-file", "-e", oid, cwd=mirror.path), f"{oid} was lost"
        assert git("rev-list", "--objects", oid, cwd=mirror.path)  # whole history is still there
    assert set(old.values()) | set(result.after.values()) <= mirror.kept_oids()
    git("fsck", "--full", "--no-dangling", cwd=mirror.path)


def test_control_without_keep_refs_the_same_gc_does_lose_the_old_tip(upstream: Upstream, mirror, git: Git):
    """Proves the survival test above can fail: remove the keep refs and the old tip is gone."""
    mirror.sync(upstream.url, None)
    doomed = mirror.live_refs()["refs/heads/feature"]
    upstream.delete("refs/heads/feature")
    mirror.sync(upstream.url, None)
    copy = mirror.path.parent / "copy.git"
    shutil.copytree(mirror.path, copy)
    lines = git("for-each-ref", "--format=delete %(refname)", KEEP_PREFIX, cwd=copy)
    git("update-ref", "--stdin", cwd=copy, input=lines.encode())
    _harsh_gc(git, copy)
    assert not git.ok("cat-file", "-e", doomed, cwd=copy)
    assert git.ok("cat-file", "-e", doomed, cwd=mirror.path)


def test_prune_never_touches_keep_refs(upstream: Upstream, mirror, git: Git):
    mirror.sync(upstream.url, None)
    kept = mirror.kept_oids()
    for ref in list(upstream.refs()):
        upstream.delete(ref)
    result = mirror.sync(upstream.url, None)
    assert result.after == {} and mirror.live_refs() == {}
    assert mirror.kept_oids() == kept


def test_branch_renamed_into_a_directory_of_itself_syncs(upstream: Upstream, mirror, git: Git):
    """`feature` -> `feature/a` is a D/F conflict that an --atomic fetch cannot apply."""
    mirror.sync(upstream.url, None)
    old_feature = mirror.live_refs()["refs/heads/feature"]
    upstream.delete("refs/heads/feature")
    upstream.push(f"{old_feature}:refs/heads/feature/a")
    result = mirror.sync(upstream.url, None)
    assert result.after == upstream.refs()
    assert "refs/heads/feature/a" in result.after and "refs/heads/feature" not in result.after
    upstream.delete("refs/heads/feature/a")
    upstream.push(f"{old_feature}:refs/heads/feature")
    assert mirror.sync(upstream.url, None).after == upstream.refs()


def test_many_changed_refs_are_packed(upstream: Upstream, mirror, git: Git):
    mirror.sync(upstream.url, None)
    head = upstream.refs()["refs/heads/main"]
    lines = "".join(f"create refs/tags/bulk-{i:03d} {head}\n" for i in range(150))
    git("update-ref", "--stdin", cwd=upstream.origin, input=lines.encode())
    result = mirror.sync(upstream.url, None)
    assert len(result.changes) == 150
    loose = list((mirror.path / "refs" / "tags").glob("bulk-*"))
    assert loose == []
    assert "refs/tags/bulk-149" in (mirror.path / "packed-refs").read_text()


def test_sync_from_an_empty_upstream_and_then_its_first_push(tmp_path: Path, git: Git, mirror):
    empty = Upstream(tmp_path / "empty", git)
    assert mirror.sync(empty.url, None).after == {}
    empty.commit("develop")
    empty.push("develop")
    result = mirror.sync(empty.url, None)
    assert list(result.after) == ["refs/heads/develop"]
    assert git("symbolic-ref", "HEAD", cwd=mirror.path).strip() == "refs/heads/develop"


def test_a_vanished_upstream_raises_repository_gone_and_keeps_everything(upstream: Upstream, mirror):
    mirror.sync(upstream.url, None)
    before = mirror.live_refs()
    shutil.rmtree(upstream.origin)
    with pytest.raises(RepositoryGone):
        mirror.sync(upstream.url, None)
    assert mirror.live_refs() == before


def test_set_head_points_clones_at_the_hosts_main_branch(upstream: Upstream, mirror, git: Git):
    mirror.sync(upstream.url, None)
    mirror.set_head("refs/heads/feature")
    mirror.sync(upstream.url, None)  # a valid HEAD is left alone
    assert git("symbolic-ref", "HEAD", cwd=mirror.path).strip() == "refs/heads/feature"
    with pytest.raises(InvalidInput):
        mirror.set_head("refs/strongroom/keep/x")


def test_size_grows_with_content(upstream: Upstream, mirror):
    empty = mirror.size_bytes()
    upstream.commit("main", {"big.bin": bytes(range(256)) * 4096})
    upstream.push("main")
    mirror.sync(upstream.url, None)
    assert mirror.size_bytes() > empty + 1000
