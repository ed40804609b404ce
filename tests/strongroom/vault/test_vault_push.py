"""Pushing restored refs out of a mirror (leases, atomicity, never a delete) and standalone snapshot copies."""
from __future__ import annotations

from pathlib import Path

import pytest

from strongroom.errors import InvalidInput
from strongroom.vault.push import (PushRejected, RefUpdate, materialize, missing_objects, push_refs,
                                   repository_refs, verify_copy)

from test_vault_support import Git, Upstream, git, mirror, upstream, vault  # noqa: F401


@pytest.fixture
def target(tmp_path: Path, git: Git) -> Path:
    """An empty bare repository standing in for the host's repository."""
    path = tmp_path / "target.git"
    git("init", "--quiet", "--bare", str(path))
    return path


def test_push_creates_refs_under_new_names_and_moves_nothing_else(upstream: Upstream, mirror, target, git: Git):
    refs = mirror.sync(upstream.url, None).after
    push_refs(mirror.path, target.as_uri(), None, [RefUpdate("refs/heads/main", refs["refs/heads/main"])])
    push_refs(mirror.path, target.as_uri(), None,
              [RefUpdate("refs/heads/restored/2024-05-01/feature", refs["refs/heads/feature"]),
               RefUpdate("refs/tags/restored/2024-05-01/v1.0", refs["refs/tags/v1.0"])])
    assert git.refs(target) == {"refs/heads/main": refs["refs/heads/main"],
                                "refs/heads/restored/2024-05-01/feature": refs["refs/heads/feature"],
                                "refs/tags/restored/2024-05-01/v1.0": refs["refs/tags/v1.0"]}
    assert git("cat-file", "-t", refs["refs/tags/v1.0"], cwd=target).strip() == "tag"  # the tag object itself


def test_a_create_never_overwrites_an_existing_ref(upstream: Upstream, mirror, target, git: Git):
    refs = mirror.sync(upstream.url, None).after
    push_refs(mirror.path, target.as_uri(), None, [RefUpdate("refs/heads/main", refs["refs/heads/feature"])])
    with pytest.raises(PushRejected) as info:
        push_refs(mirror.path, target.as_uri(), None, [RefUpdate("refs/heads/main", refs["refs/heads/main"])])
    assert "refs/heads/main" in info.value.refused
    assert git.refs(target)["refs/heads/main"] == refs["refs/heads/feature"]


def test_overwrite_needs_the_expected_old_value_and_is_atomic(upstream: Upstream, mirror, target, git: Git):
    refs = mirror.sync(upstream.url, None).after
    main, feature = refs["refs/heads/main"], refs["refs/heads/feature"]
    push_refs(mirror.path, target.as_uri(), None, [RefUpdate("refs/heads/main", feature)])
    stale = [RefUpdate("refs/heads/new", main), RefUpdate("refs/heads/main", main, expected=main)]
    with pytest.raises(PushRejected):
        push_refs(mirror.path, target.as_uri(), None, stale)
    assert git.refs(target) == {"refs/heads/main": feature}  # atomic: the good half did not land either
    push_refs(mirror.path, target.as_uri(), None, [RefUpdate("refs/heads/main", main, expected=feature)])
    assert git.refs(target) == {"refs/heads/main": main}  # a non-fast-forward, allowed by the lease


def test_a_push_can_never_delete_a_ref(mirror, target):
    with pytest.raises(InvalidInput):
        push_refs(mirror.path, target.as_uri(), None, [RefUpdate("refs/heads/main", "")])
    with pytest.raises(InvalidInput):
        push_refs(mirror.path, target.as_uri(), None, [RefUpdate("refs/strongroom/keep/x", "a" * 40)])


def test_missing_objects_names_a_damaged_history(upstream: Upstream, mirror, git: Git):
    refs = mirror.sync(upstream.url, None).after
    assert missing_objects(mirror.path, list(refs.values())) is None
    git("repack", "-a", "-d", "-q", cwd=mirror.path)
    pack = next((mirror.path / "objects" / "pack").glob("*.pack"))
    aside = pack.with_suffix(".aside")
    pack.rename(aside)
    try:
        assert missing_objects(mirror.path, [refs["refs/heads/main"]])
    finally:
        aside.rename(pack)


def test_materialize_makes_a_standalone_copy_of_exactly_the_snapshot(upstream: Upstream, mirror, tmp_path, git: Git):
    refs = mirror.sync(upstream.url, None).after
    chosen = {k: v for k, v in refs.items() if k != "refs/heads/feature"}
    dest = tmp_path / "out" / "copy.git"
    materialize(mirror.path, chosen, dest)
    assert repository_refs(dest) == chosen
    assert not (dest / "objects" / "info" / "alternates").exists()
    assert git("config", "--get-regexp", "remote", cwd=dest, check=False) == ""
    assert verify_copy(dest, chosen) == []
    assert verify_copy(dest, refs) == [f"refs/heads/feature is missing in the copy, {refs['refs/heads/feature']} "
                                       "in the snapshot"]
    with pytest.raises(InvalidInput):
        materialize(mirror.path, chosen, dest)  # never over an existing repository
    assert [p.name for p in dest.parent.iterdir()] == ["copy.git"]  # no scratch left behind
