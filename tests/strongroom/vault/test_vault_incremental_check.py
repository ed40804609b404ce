import subprocess
from pathlib import Path

import pytest

from strongroom.errors import GitError
from strongroom.vault.mirror import Vault


def _git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def _origin(tmp: Path) -> Path:
    work = tmp / "work"
    _git("init", "-q", "-b", "main", str(work), cwd=tmp)
    for i in range(3):
        (work / f"f{i}.txt").write_text(f"content {i}\n")
        _git("add", ".", cwd=work)
        _git("-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", f"c{i}", cwd=work)
    return work


def test_incremental_check_passes_on_a_complete_mirror_and_fails_on_a_missing_object(tmp_path):
    work = _origin(tmp_path)
    vault = Vault(tmp_path / "vaults")
    mirror = vault.open(vault.mirror_path("{00000000-0000-0000-0000-00000000000a}",
                                          "{00000000-0000-0000-0000-00000000000b}"))
    result = mirror.sync(f"file://{work}", None)
    mirror.check_new_history(result.after.values(), result.before.values())
    tree = _git("rev-parse", "HEAD^{tree}", cwd=work)
    blob = _git("rev-parse", "HEAD:f2.txt", cwd=work)
    objects = [p for p in (mirror.path / "objects").rglob("*") if p.is_file() and "pack" not in p.parts]
    packs = list((mirror.path / "objects" / "pack").glob("*.pack"))
    assert objects or packs
    # remove the newest blob: unpack everything loose first so one object can be deleted
    if packs:
        for pack in packs:
            idx = pack.with_suffix(".idx")
            data = pack.read_bytes()
            pack.unlink()
            idx.unlink()
            subprocess.run(["git", "unpack-objects", "-q"], cwd=mirror.path, input=data, check=True)
    (mirror.path / "objects" / blob[:2] / blob[2:]).unlink()
    with pytest.raises(GitError):
        mirror.check_new_history(result.after.values(), [])
    assert tree  # the tree object is still there; only the blob is missing
