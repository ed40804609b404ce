"""Mirror configuration, maintenance and verification. Nothing here ever prunes.

Maintenance is pack-refs, a geometric repack (which rolls small packs and loose objects into a
bigger pack, reachable or not) and a commit-graph, run under the repository's writer lock. There
is no ``gc``, no ``prune``, no ``repack -a``/``-A``/``--unpack-unreachable`` and no reflog expiry:
keep refs make everything a snapshot needs reachable, and what is unreachable is kept too.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import time
from functools import cache
from pathlib import Path
from typing import Sequence

from ..errors import GitError, GitPermanentError, InvalidInput
from .git import run_git

log = logging.getLogger(__name__)

MIN_GIT = (2, 36)  # `fetch --prune` exits non-zero when pruning fails only since 2.36
GARBAGE_AGE_SECONDS = 3600.0
_FSYNC_CHOICES = ("objects,reference,derived-metadata", "objects,derived-metadata", "objects")

MIRROR_CONFIG: tuple[tuple[str, str], ...] = (
    ("gc.auto", "0"),                      # no automatic gc/prune, ever
    ("gc.autoDetach", "false"),
    ("maintenance.auto", "false"),
    ("core.logAllRefUpdates", "always"),  # a free history of tip moves
    ("uploadpack.hideRefs", "refs/strongroom"),
    ("uploadpack.allowAnySHA1InWant", "false"),
    ("uploadpack.allowTipSHA1InWant", "false"),
    ("uploadpack.allowReachableSHA1InWant", "false"),
    ("http.receivepack", "false"),
    ("http.getanyfile", "false"),          # no dumb-HTTP file access (alternates, raw packs)
    ("receive.denyDeletes", "true"),
    ("receive.denyNonFastForwards", "true"),
    # Always keep fetched packs: one fsync per fetch instead of one per loose object; the
    # geometric repack in maintain() rolls the small packs up.
    ("fetch.unpackLimit", "1"),
    ("repack.writeBitmaps", "false"),      # bitmaps are written into the multi-pack-index instead
    ("core.repositoryFormatVersion", "0"),
)
PRE_RECEIVE = "#!/bin/sh\necho 'strongroom: backups are read-only' >&2\nexit 1\n"


@cache
def git_version() -> tuple[int, int]:
    """(major, minor) of the installed git."""
    text = run_git(["version"]).text
    match = re.search(r"(\d+)\.(\d+)", text)
    if not match:
        raise GitPermanentError(f"cannot parse {text.strip()!r}")
    return int(match.group(1)), int(match.group(2))


def require_git() -> None:
    """Refuse to run against a git older than MIN_GIT."""
    if git_version() < MIN_GIT:
        raise GitPermanentError(f"git >= {MIN_GIT[0]}.{MIN_GIT[1]} is required")


def configure(path: Path) -> None:
    """Apply the mirror's safe configuration and the refuse-all-pushes hook (idempotent)."""
    for key, value in (*MIRROR_CONFIG, ("core.fsync", fsync_components(path))):
        run_git(["config", key, value], cwd=path)
    hook = path / "hooks" / "pre-receive"
    hook.parent.mkdir(exist_ok=True)
    if not hook.exists() or hook.read_text() != PRE_RECEIVE:
        hook.write_text(PRE_RECEIVE)
    hook.chmod(0o755)


def fsync_components(path: Path) -> str:
    """The most complete ``core.fsync`` value this git accepts without warnings."""
    for value in _FSYNC_CHOICES:
        probe = run_git(["-c", f"core.fsync={value}", "rev-parse", "--git-dir"], cwd=path)
        if "core.fsync" not in probe.stderr:
            return value
    return "objects"


def pack_refs(path: Path) -> None:
    """Move loose refs into packed-refs (cheap; speeds up fetch and ref listing)."""
    run_git(["pack-refs", "--all"], cwd=path)


def maintain(path: Path) -> None:
    """Clean crash garbage, pack refs, geometric repack + midx, commit-graph. Never prunes."""
    clean_garbage(path)
    configure(path)  # upgrades mirrors made by older versions
    pack_refs(path)
    # -d only drops packs whose every object is now in the new pack; loose objects are packed
    # whether reachable or not (git-repack(1) --geometric), so nothing is lost.
    run_git(["repack", "-d", "--geometric=2", "--write-midx", "--write-bitmap-index"], cwd=path)
    run_git(["commit-graph", "write", "--reachable", "--split"], cwd=path)


def check_connectivity(path: Path) -> None:
    """Every ref's history is present (cheap; run after each sync)."""
    _fsck(path, ["--connectivity-only"])


def fsck(path: Path) -> None:
    """Full object check: hashes, structure, connectivity."""
    # Not --strict: legacy objects (e.g. zero-padded file modes) are warnings, not corruption.
    _fsck(path, ["--full"])


def _fsck(path: Path, options: list[str]) -> None:
    try:
        run_git(["fsck", "--no-dangling", "--no-progress", *options], cwd=path)
    except GitError as exc:
        # A failed check is never "try again later", whatever git printed.
        raise GitPermanentError(f"fsck of {path.name} failed: {exc}", returncode=exc.returncode,
                                stderr=exc.stderr) from exc


def clean_garbage(path: Path, *, older_than: float = GARBAGE_AGE_SECONDS, now: float | None = None) -> list[Path]:
    """Remove temp files and stale locks that a killed git left behind (older than ``older_than``)."""
    cutoff = (time.time() if now is None else now) - older_than
    removed = []
    for candidate in _garbage_candidates(path):
        try:
            if candidate.lstat().st_mtime < cutoff:
                candidate.unlink()
                removed.append(candidate)
        except FileNotFoundError:
            continue
    removed += _clean_scratch(path / "strongroom", cutoff)
    if removed:
        log.info("removed %d stale temporary files from %s", len(removed), path.name)
    return removed


def _clean_scratch(meta: Path, cutoff: float) -> list[Path]:
    """Half-built views, bundles and manifests of a killed process (only our ``.tmp-*`` names)."""
    removed = []
    for candidate in [*meta.glob(".tmp-*"), *meta.glob("views/.tmp-*"), *meta.glob("tmp/.tmp-*")]:
        try:
            if candidate.lstat().st_mtime >= cutoff:
                continue
            if candidate.is_dir() and not candidate.is_symlink():
                shutil.rmtree(candidate)
            else:
                candidate.unlink()
            removed.append(candidate)
        except FileNotFoundError:
            continue
    return removed


def _garbage_candidates(path: Path) -> list[Path]:
    """Temp packs/objects, stale lock files and fetch .keep markers; never a pack, object or ref."""
    objects = path / "objects"
    found = [*objects.glob("pack/tmp_*"), *objects.glob("pack/.tmp-*"), *objects.glob("tmp_obj_*"),
             *objects.glob("??/tmp_obj_*"), *objects.glob("incoming-*/**/*"), *objects.glob("info/*.lock"),
             *objects.glob("info/commit-graphs/*.lock"),
             *path.glob("*.lock"), *objects.glob("pack/*.lock"), *objects.glob("info/commit-graphs/tmp_*")]
    found += [p for p in (path / "refs").rglob("*.lock")]
    found += [p for p in (path / "logs").rglob("*.lock")]
    for keep in objects.glob("pack/pack-*.keep"):
        # fetch/index-pack mark a pack "fetch-pack <pid> on <host>" until refs are updated; a
        # killed fetch leaves the marker, which only stops the pack from being repacked.
        if keep.read_bytes().startswith((b"fetch-pack ", b"receive-pack ")):
            found.append(keep)
    return [p for p in found if p.is_file() and not p.is_symlink()]


def rotating_subset(items: Sequence[str], fraction_denominator: int, counter: int) -> list[str]:
    """The items due in round ``counter`` when 1/``fraction_denominator`` is checked per round.

    An item's round is a stable hash of the item, so adding or removing other items never makes
    one skip its turn: every item comes up exactly once in any ``fraction_denominator`` rounds.
    """
    if fraction_denominator < 1:
        raise InvalidInput("fraction_denominator must be at least 1")
    due = counter % fraction_denominator
    return [item for item in items if _bucket(item, fraction_denominator) == due]


def _bucket(item: str, buckets: int) -> int:
    return int.from_bytes(hashlib.sha256(item.encode()).digest()[:8], "big") % buckets


def disk_usage(path: Path) -> int:
    """Apparent size in bytes of every file under ``path`` (symlinks not followed)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                continue
    return total
