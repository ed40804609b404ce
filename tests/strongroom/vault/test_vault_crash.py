"""Crash safety: SIGKILL in the middle of a fetch leaves a consistent mirror that syncs again."""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import strongroom
from strongroom.vault import SnapshotEntry
from strongroom.vault.maintenance import clean_garbage

from test_vault_support import Git, GitServer, Upstream, git, serving, upstream, vault, mirror  # noqa: F401

SYNC_AND_RECORD = """
import sys
from datetime import datetime, timezone
from pathlib import Path
from strongroom.vault import SnapshotEntry, Vault
mirror = Vault(Path(sys.argv[1])).open(Path(sys.argv[2]))
result = mirror.sync(sys.argv[3], None)
mirror.record_snapshot(SnapshotEntry("snap-2", datetime.now(timezone.utc), "push", result.after, result.changes))
"""


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    ppid = int(handle.read().rsplit(") ", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            tree.setdefault(ppid, []).append(int(entry))
    return tree


def _descendants(pid: int) -> set[int]:
    tree, found, todo = _children(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


PR_SET_CHILD_SUBREAPER = 36


def _subreaper(on: bool) -> None:
    """Adopt orphaned descendants, so the processes this test kills can be reaped (not left as zombies)."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0)


def _reap(pids: set[int]) -> None:
    for pid in pids:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


def _kill_tree(pid: int) -> set[int]:
    """Freeze the process and everything it started (git runs in its own sessions), then SIGKILL all:
    the nearest thing to pulling the plug. Returns the killed descendants."""
    frozen: set[int] = set()
    for _ in range(3):  # freeze repeatedly so nothing forks a survivor between listing and killing
        for target in ({pid} | _descendants(pid)) - frozen:
            try:
                os.kill(target, signal.SIGSTOP)
                frozen.add(target)
            except ProcessLookupError:
                pass
    for target in frozen:
        try:
            os.kill(target, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return frozen - {pid}


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_sigkill_mid_fetch_leaves_a_consistent_mirror(upstream: Upstream, mirror, git: Git):
    first = mirror.sync(upstream.url, None)
    mirror.record_snapshot(SnapshotEntry("snap-1", datetime.now(timezone.utc), "install", first.after, {}))
    upstream.commit("main", {"big-a.bin": os.urandom(3_000_000), "big-b.bin": os.urandom(3_000_000)})
    upstream.tag("v2.0", "main", annotated=True)
    upstream.push("main", "v2.0")
    pack_dir = mirror.path / "objects" / "pack"

    def transfer_under_way() -> bool:
        return any(p.stat().st_size > 200_000 for p in pack_dir.glob("tmp_pack_*"))

    env = {**os.environ, "PYTHONPATH": str(Path(strongroom.__file__).resolve().parents[1])}
    killed: set[int] = set()
    _subreaper(True)
    try:
        with serving(GitServer({"repo": upstream.origin}, throttle=0.01)) as base:
            proc = subprocess.Popen([sys.executable, "-c", SYNC_AND_RECORD, str(mirror.path.parents[1]),
                                     str(mirror.path), f"{base}/repo.git"], env=env, start_new_session=True)
            try:
                _wait_for(lambda: transfer_under_way() or proc.poll() is not None, 30, "the fetch to start")
                assert proc.poll() is None, "the sync finished before it could be killed"
                killed = _kill_tree(proc.pid)
            finally:
                proc.kill()
                proc.wait()
                _reap(killed)
    finally:
        _subreaper(False)

    # Previous refs intact, nothing half-applied, repository clean.
    assert mirror.live_refs() == first.after
    assert list(pack_dir.glob("tmp_pack_*")), "expected the killed fetch's garbage"
    git("fsck", "--full", "--no-dangling", cwd=mirror.path)
    mirror.check_connectivity()
    # The journal holds no entry whose objects are missing or unkept.
    journal = mirror.journal()
    assert [e.id for e in journal] == ["snap-1"]
    for entry in journal:
        for oid in entry.refs.values():
            assert git.ok("cat-file", "-e", oid, cwd=mirror.path)
            assert oid in mirror.kept_oids()

    # The next sync completes normally and the janitor clears the garbage once it is stale.
    again = mirror.sync(upstream.url, None)
    assert again.after == upstream.refs() and again.before == first.after
    mirror.record_snapshot(SnapshotEntry("snap-2", datetime.now(timezone.utc), "push", again.after, again.changes))
    assert [e.id for e in mirror.journal()] == ["snap-1", "snap-2"]
    removed = clean_garbage(mirror.path, now=time.time() + 7200)
    assert any(p.name.startswith("tmp_pack_") for p in removed)
    assert not list(pack_dir.glob("tmp_pack_*"))
    mirror.fsck()
    assert set(first.after.values()) | set(again.after.values()) <= mirror.kept_oids()
