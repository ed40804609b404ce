"""Offline export: a snapshot out of the data directory alone, by slug or UUID, as a repository or a bundle."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).parent / "vault"))

from test_vault_support import REPOSITORY, WORKSPACE, Git, Upstream, git, upstream  # noqa: E402,F401

from strongroom.errors import InvalidInput, NotFound  # noqa: E402
from strongroom.export import export_offline, find_vault, parse_time  # noqa: E402
from strongroom.vault import SnapshotEntry, Vault  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
EARLY, LATE = datetime(2024, 5, 1, 12, tzinfo=timezone.utc), datetime(2024, 5, 2, 12, tzinfo=timezone.utc)


@pytest.fixture
def data_dir(tmp_path: Path, upstream: Upstream) -> tuple[Path, dict, dict]:
    """A data directory with one vault holding two snapshots (the second after a force-push)."""
    data = tmp_path / "data"
    vault = Vault(data / "vaults")
    mirror = vault.open(vault.mirror_path(WORKSPACE, REPOSITORY))
    mirror.write_manifest({"format": 1, "workspace": {"uuid": WORKSPACE, "slug": "acme", "name": "Acme"},
                           "repository": {"uuid": REPOSITORY, "slug": "api", "name": "API", "full_name": "acme/api"}})
    first = mirror.sync(upstream.url, None).after
    mirror.record_snapshot(SnapshotEntry("s-early", EARLY, "install", first))
    upstream.reset_hard("main", first["refs/heads/main"] + "~1")
    upstream.push("main", force=True)
    second = mirror.sync(upstream.url, None).after
    mirror.record_snapshot(SnapshotEntry("s-late", LATE, "push", second))
    return data, first, second


def test_export_finds_the_repository_by_slug_or_uuid_and_writes_the_chosen_snapshot(data_dir, tmp_path, git: Git):
    data, first, second = data_dir
    assert find_vault(data, "ACME", "api").path == find_vault(data, WORKSPACE.strip("{}"), REPOSITORY).path
    entry = export_offline(data, "acme", "api", to=tmp_path / "latest.git")
    assert entry.id == "s-late" and git.refs(tmp_path / "latest.git") == second
    entry = export_offline(data, "acme", REPOSITORY, at=parse_time("2024-05-01T23:00:00Z"), to=tmp_path / "old.git")
    assert entry.id == "s-early" and git.refs(tmp_path / "old.git") == first
    assert git.ok("fsck", "--no-dangling", cwd=tmp_path / "old.git")
    export_offline(data, "acme", "api", snapshot_id="s-early", bundle=tmp_path / "old.bundle")
    assert git.ok("bundle", "verify", str(tmp_path / "old.bundle"), cwd=tmp_path / "old.git")
    git("clone", "--quiet", "--mirror", str(tmp_path / "old.bundle"), str(tmp_path / "from-bundle.git"))
    assert git.refs(tmp_path / "from-bundle.git") == first
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_export_refuses_what_it_cannot_do_exactly(data_dir, tmp_path):
    data, _, _ = data_dir
    with pytest.raises(NotFound):
        export_offline(data, "acme", "web", to=tmp_path / "x.git")
    with pytest.raises(NotFound):
        export_offline(data, "acme", "api", at=parse_time("2024-04-01T00:00:00Z"), to=tmp_path / "x.git")
    with pytest.raises(NotFound):
        export_offline(data, "acme", "api", snapshot_id="s-nope", to=tmp_path / "x.git")
    with pytest.raises(InvalidInput):
        export_offline(data, "acme", "api", to=tmp_path / "x.git", bundle=tmp_path / "x.bundle")


def test_cli_export_needs_nothing_but_the_data_directory(data_dir, tmp_path, git: Git):
    data, _, second = data_dir
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path / "home")}  # no STRONGROOM_*, no DATABASE_URL
    out = subprocess.run([sys.executable, "-m", "strongroom.cli", "export", "--data-dir", str(data),
                          "--workspace", "acme", "--repository", "api", "--to", str(tmp_path / "cli.git")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "s-late" in out.stdout and git.refs(tmp_path / "cli.git") == second
    # the one write into the data directory is the offline audit log
    assert not (tmp_path / "var").exists() and sorted(p.name for p in data.iterdir()) == ["audit", "vaults"]
    missing = subprocess.run([sys.executable, "-m", "strongroom.cli", "export", "--data-dir", str(data),
                              "--workspace", "acme", "--repository", "nope", "--bundle", str(tmp_path / "b")],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert missing.returncode == 1 and "no backup of acme/nope" in missing.stderr


def test_an_export_checks_out_the_recorded_main_branch_and_the_cli_shows_the_settings(tmp_path, upstream, git: Git):
    data = tmp_path / "data"
    mirror = Vault(data / "vaults").open(Vault(data / "vaults").mirror_path(WORKSPACE, REPOSITORY))
    settings = {"description": "The platform API", "is_private": False, "mainbranch": "develop",
                "project": {"key": "PLAT", "name": "Platform"}}
    mirror.write_manifest({"format": 1, "workspace": {"uuid": WORKSPACE, "slug": "acme", "name": "Acme"},
                           "repository": {"uuid": REPOSITORY, "slug": "api", "name": "API", "full_name": "acme/api",
                                          "settings": settings}})
    upstream.commit("develop")
    upstream.push("develop")
    refs = mirror.sync(upstream.url, None).after
    assert {"refs/heads/main", "refs/heads/develop"} <= set(refs)
    mirror.record_snapshot(SnapshotEntry("s-one", EARLY, "install", refs))
    export_offline(data, "acme", "api", to=tmp_path / "out.git")
    assert (tmp_path / "out.git" / "HEAD").read_text().strip() == "ref: refs/heads/develop"
    export_offline(data, "acme", "api", bundle=tmp_path / "out.bundle")
    git("clone", "--quiet", str(tmp_path / "out.bundle"), str(tmp_path / "work"))
    assert git("rev-parse", "--abbrev-ref", "HEAD", cwd=tmp_path / "work").strip() == "develop"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path / "home")}
    out = subprocess.run([sys.executable, "-m", "strongroom.cli", "export", "--data-dir", str(data),
                          "--workspace", "acme", "--repository", "api", "--to", str(tmp_path / "cli.git")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert '"mainbranch": "develop"' in out.stdout and '"key": "PLAT"' in out.stdout
