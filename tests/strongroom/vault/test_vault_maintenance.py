"""Maintenance never prunes, cleans crash garbage, and verification catches corruption."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from strongroom.errors import GitPermanentError, InvalidInput
from strongroom.vault import rotating_subset
from strongroom.vault.maintenance import clean_garbage

from test_vault_support import Git, Upstream, git, mirror, upstream, vault  # noqa: F401


def _packs(repo: Path) -> list[Path]:
    return sorted((repo / "objects" / "pack").glob("pack-*.pack"))


def test_maintain_rolls_packs_up_and_keeps_every_object(upstream: Upstream, mirror, git: Git):
    mirror.sync(upstream.url, None)
    first_main = mirror.live_refs()["refs/heads/main"]
    for _ in range(5):
        upstream.commit("main")
        upstream.push("main")
        mirror.sync(upstream.url, None)
    upstream.delete("refs/heads/feature")
    mirror.sync(upstream.url, None)
    orphan = git("hash-object", "-w", "--stdin", cwd=mirror.path, input=b"unreachable but precious\n").strip()
    all_objects = set(git("cat-file", "--batch-all-objects", "--batch-check=%(objectname)", cwd=mirror.path).split())
    packs_before = len(_packs(mirror.path))
    assert packs_before >= 6  # fetch.unpackLimit=1: every fetch kept its pack

    mirror.maintain()

    assert len(_packs(mirror.path)) < packs_before
    assert (mirror.path / "objects" / "pack" / "multi-pack-index").is_file()
    assert list((mirror.path / "objects" / "info").glob("commit-graph*"))
    after = set(git("cat-file", "--batch-all-objects", "--batch-check=%(objectname)", cwd=mirror.path).split())
    assert all_objects <= after and orphan in after and first_main in after
    keep_dir = mirror.path / "refs" / "strongroom" / "keep"
    assert not keep_dir.exists() or not list(keep_dir.iterdir())  # keep refs were packed
    assert "refs/strongroom/keep/" + first_main in (mirror.path / "packed-refs").read_text()
    mirror.check_connectivity()
    mirror.fsck()
    mirror.maintain()  # idempotent on an already maintained mirror


def test_maintain_works_on_an_empty_mirror(mirror):
    mirror.maintain()
    mirror.check_connectivity()


def test_stale_crash_garbage_is_removed_and_fresh_files_are_left(upstream: Upstream, mirror):
    mirror.sync(upstream.url, None)
    pack_dir = mirror.path / "objects" / "pack"
    stale = [pack_dir / "tmp_pack_ABC123", pack_dir / ".tmp-123-pack-x.idx", mirror.path / "packed-refs.lock",
             mirror.path / "refs" / "heads" / "main.lock", mirror.meta_dir / ".tmp-manifest.json-x"]
    (mirror.meta_dir / "views" / ".tmp-snap-1-abc" / "objects").mkdir(parents=True)
    stale.append(mirror.meta_dir / "views" / ".tmp-snap-1-abc")
    fresh = pack_dir / "tmp_pack_FRESH"
    keep = pack_dir / "pack-0000.keep"
    for path in stale[:-1] + [fresh]:
        path.write_bytes(b"x")
    keep.write_bytes(b"fetch-pack 123 on host\n")
    operator_keep = pack_dir / "pack-1111.keep"
    operator_keep.write_bytes(b"")
    hour_ago = time.time() - 7200
    for path in [*stale, keep, operator_keep]:
        os.utime(path, (hour_ago, hour_ago))

    removed = clean_garbage(mirror.path)

    assert set(removed) == {*stale, keep}
    assert fresh.exists() and operator_keep.exists()
    assert mirror.live_refs() == upstream.refs()
    mirror.check_connectivity()


def test_connectivity_check_and_fsck_detect_a_missing_object(upstream: Upstream, mirror, git: Git):
    mirror.sync(upstream.url, None)
    mirror.maintain()
    tree = git("rev-parse", "refs/heads/main^{tree}", cwd=mirror.path).strip()
    blob = git("ls-tree", tree, cwd=mirror.path).split()[2]
    # Remove one blob: rewrite the repository's objects without it.
    keep = [o for o in git("cat-file", "--batch-all-objects", "--batch-check=%(objectname)", cwd=mirror.path).split()
            if o != blob]
    for pack in _packs(mirror.path):
        pack.with_suffix(".idx").unlink()
        pack.unlink()
    for extra in (mirror.path / "objects" / "pack").glob("multi-pack-index*"):
        extra.unlink()
    source = mirror.path.parent / "source.git"
    git("clone", "--quiet", "--mirror", upstream.url, str(source))
    git("pack-objects", "--quiet", str(mirror.path / "objects" / "pack" / "pack"), cwd=source,
        input="\n".join(keep).encode() + b"\n")
    with pytest.raises(GitPermanentError):
        mirror.check_connectivity()
    with pytest.raises(GitPermanentError):
        mirror.fsck()


def test_rotating_subset_covers_every_item_once_per_cycle():
    items = [f"repo-{i}" for i in range(200)]
    rounds = [rotating_subset(items, 7, counter) for counter in range(7)]
    flat = [item for chunk in rounds for item in chunk]
    assert sorted(flat) == sorted(items) and len(flat) == len(set(flat))
    assert all(chunk for chunk in rounds)
    assert rotating_subset(items, 7, 3) == rotating_subset(items, 7, 10)
    grown = rotating_subset(items + ["repo-new"], 7, 3)
    assert set(rotating_subset(items, 7, 3)) <= set(grown)  # a new item never shifts the others
    assert rotating_subset(items, 1, 42) == items
    with pytest.raises(InvalidInput):
        rotating_subset(items, 0, 1)
