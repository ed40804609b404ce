"""Snapshot journal, manifest, snapshot views and bundles."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from strongroom.errors import Conflict, GitPermanentError, InvalidInput
from strongroom.vault import SnapshotEntry, new_snapshot_id

from test_vault_support import Git, Upstream, git, mirror, upstream, vault  # noqa: F401

WHEN = datetime(2024, 5, 1, 12, 30, tzinfo=timezone.utc)


def _entry(refs: dict[str, str], changes=None, sid: str = "snap-1") -> SnapshotEntry:
    return SnapshotEntry(id=sid, taken_at=WHEN, trigger="push", refs=refs, changes=changes or {})


def _clone_refs(git: Git, source: str, dest: Path) -> dict[str, str]:
    git("clone", "--quiet", "--mirror", source, str(dest))
    return git.refs(dest)


def test_recorded_snapshots_read_back_in_order(upstream: Upstream, mirror):
    result = mirror.sync(upstream.url, None)
    first = SnapshotEntry(new_snapshot_id(WHEN), WHEN, "install", result.after, result.changes)
    mirror.record_snapshot(first)
    upstream.commit("main")
    upstream.push("main")
    second_sync = mirror.sync(upstream.url, None)
    mirror.record_snapshot(_entry(second_sync.after, second_sync.changes, sid="snap-2"))
    journal = mirror.journal()
    assert [e.id for e in journal] == [first.id, "snap-2"]
    assert journal[0] == first
    assert journal[0].taken_at == WHEN and journal[0].taken_at.tzinfo is not None
    assert journal[1].changes == second_sync.changes
    raw = json.loads((mirror.meta_dir / "journal.jsonl").read_text().splitlines()[0])
    assert set(raw) == {"id", "taken_at", "trigger", "refs", "changes"}
    assert raw["taken_at"] == "2024-05-01T12:30:00Z"
    assert first.id.startswith("20240501T123000Z-")


def test_a_torn_last_line_is_ignored_and_cut_by_the_next_append(upstream: Upstream, mirror):
    refs = mirror.sync(upstream.url, None).after
    mirror.record_snapshot(_entry(refs, sid="snap-1"))
    journal_file = mirror.meta_dir / "journal.jsonl"
    with journal_file.open("ab") as handle:
        handle.write(b'{"id": "snap-torn", "taken_at": "2024-05-0')  # a crash mid-append
    assert [e.id for e in mirror.journal()] == ["snap-1"]
    mirror.record_snapshot(_entry(refs, sid="snap-2"))
    assert [e.id for e in mirror.journal()] == ["snap-1", "snap-2"]
    assert b"snap-torn" not in journal_file.read_bytes()


def test_recording_a_snapshot_keeps_its_tips_first(upstream: Upstream, mirror, git: Git):
    refs = mirror.sync(upstream.url, None).after
    keep = "refs/strongroom/keep/" + refs["refs/heads/feature"]
    git("update-ref", "-d", keep, cwd=mirror.path)
    mirror.record_snapshot(_entry(refs))
    assert refs["refs/heads/feature"] in mirror.kept_oids()


def test_a_snapshot_naming_a_missing_object_is_not_recorded(upstream: Upstream, mirror):
    refs = mirror.sync(upstream.url, None).after
    with pytest.raises(GitPermanentError):
        mirror.record_snapshot(_entry({**refs, "refs/heads/ghost": "1" * 40}))
    with pytest.raises(InvalidInput):
        mirror.record_snapshot(_entry({"refs/strongroom/keep/x": refs["refs/heads/main"]}))
    assert mirror.journal() == []


def test_manifest_is_replaced_atomically(mirror):
    assert mirror.read_manifest() == {}
    mirror.write_manifest({"workspace": {"uuid": "{w}", "slug": "acme"}, "repository": {"slug": "api"}})
    mirror.write_manifest({"workspace": {"uuid": "{w}", "slug": "acme"}, "repository": {"slug": "api-2"}})
    assert mirror.read_manifest()["repository"]["slug"] == "api-2"
    assert [p.name for p in mirror.meta_dir.iterdir() if p.name.startswith(".tmp")] == []


def test_a_snapshot_view_clones_to_exactly_its_refs_after_upstream_moved_on(upstream: Upstream, mirror,
                                                                             git: Git, tmp_path: Path):
    snap = mirror.sync(upstream.url, None).after
    mirror.record_snapshot(_entry(snap))
    upstream.reset_hard("main", f"{snap['refs/heads/main']}~1")
    upstream.commit("main")
    upstream.push("main", force=True)
    upstream.delete("refs/heads/feature")
    mirror.sync(upstream.url, None)
    git("gc", "--quiet", "--prune=now", cwd=mirror.path)

    view = mirror.snapshot_view("snap-1", snap)
    assert view == mirror.meta_dir / "views" / "snap-1.git"
    assert _clone_refs(git, view.as_uri(), tmp_path / "clone.git") == snap
    assert git("symbolic-ref", "HEAD", cwd=view).strip() == "refs/heads/main"
    git("fsck", "--no-dangling", cwd=tmp_path / "clone.git")
    assert mirror.snapshot_view("snap-1", snap) == view  # cached, idempotent
    with pytest.raises(Conflict):
        mirror.snapshot_view("snap-1", {"refs/heads/main": snap["refs/heads/main"]})
    with pytest.raises(InvalidInput):
        mirror.snapshot_view("../evil", snap)


def test_view_head_falls_back_to_master_then_first_branch(upstream: Upstream, mirror, git: Git):
    refs = mirror.sync(upstream.url, None).after
    oid = refs["refs/heads/main"]
    only_master = mirror.snapshot_view("a", {"refs/heads/master": oid, "refs/heads/zeta": oid})
    first_branch = mirror.snapshot_view("b", {"refs/heads/zeta": oid, "refs/heads/beta": oid, "refs/tags/v": oid})
    assert git("symbolic-ref", "HEAD", cwd=only_master).strip() == "refs/heads/master"
    assert git("symbolic-ref", "HEAD", cwd=first_branch).strip() == "refs/heads/beta"


def test_bundle_holds_exactly_the_refs_and_verifies(upstream: Upstream, mirror, git: Git, tmp_path: Path):
    refs = mirror.sync(upstream.url, None).after
    dest = tmp_path / "out" / "snap.bundle"
    dest.parent.mkdir()
    mirror.bundle(refs, dest)
    heads = dict(reversed(line.split(" ", 1)) for line in git("bundle", "list-heads", str(dest)).splitlines())
    assert heads.pop("HEAD") == refs["refs/heads/main"]
    assert heads == refs
    assert _clone_refs(git, str(dest), tmp_path / "restored.git") == refs
    assert [p.name for p in dest.parent.iterdir()] == ["snap.bundle"]
    assert not list((mirror.meta_dir / "tmp").iterdir())
    with pytest.raises(InvalidInput):
        mirror.bundle({}, tmp_path / "empty.bundle")
