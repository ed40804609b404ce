"""Restoring out of the vault: push chosen refs to a remote, and build standalone copies of a snapshot.

A push never deletes a remote ref and never forces blindly: every ref carries a lease
(``--force-with-lease=<ref>:<expected>``; empty = the ref must not exist), so a ref that moved since
the plan was made is refused instead of overwritten, and ``--atomic`` makes the push all or nothing.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from ..errors import GitPermanentError, InvalidInput
from .git import GitCredentials, classify_failure, run_git
from .journal import fsync_dir
from .maintenance import fsck
from .mirror import check_remote_url
from .views import populate_view, validate_oid, validate_ref_name, validate_refs

_NETWORK_CONFIG = ("-c", "http.lowSpeedLimit=1000", "-c", "http.lowSpeedTime=120")
_PUSH_OPTIONS = ("--atomic", "--porcelain", "--no-verify", "--no-follow-tags", "--no-recurse-submodules")


@dataclass(frozen=True)
class RefUpdate:
    """Set ``ref`` on the remote to ``new``, only if it currently is ``expected`` (None = absent)."""

    ref: str
    new: str
    expected: str | None = None


class PushRejected(GitPermanentError):
    """The remote refused the push (a lease failed or a ref was protected); nothing was changed."""

    code = "push_rejected"

    def __init__(self, message: str, *, refused: dict[str, str]) -> None:
        super().__init__(message)
        self.refused = refused


def push_refs(repo: Path, url: str, credentials: GitCredentials | None, updates: Sequence[RefUpdate], *,
              timeout: float | None = None) -> None:
    """Push ``updates`` from ``repo`` (a mirror or view holding the objects) to ``url``, atomically."""
    if not updates:
        return
    args = [*_NETWORK_CONFIG, "push", *_PUSH_OPTIONS]
    specs = []
    for update in updates:
        ref, new = validate_ref_name(update.ref), validate_oid(update.new)  # a source: never a delete
        expected = validate_oid(update.expected) if update.expected is not None else ""
        args.append(f"--force-with-lease={ref}:{expected}")
        specs.append(f"{new}:{ref}")
    args += ["--end-of-options", check_remote_url(url), *specs]
    env = credentials.env() if credentials is not None else None
    result = run_git(args, cwd=repo, env=env, timeout=timeout, check=False)
    if result.returncode == 0:
        return
    refused = _refused(result.text)
    if refused:
        detail = "; ".join(f"{ref}: {why}" for ref, why in sorted(refused.items()))
        raise PushRejected(f"the push was refused, nothing changed ({detail})", refused=refused)
    raise classify_failure("push", result.returncode, result.stderr)


def _refused(porcelain: str) -> dict[str, str]:
    """Refs the remote or the lease refused, from ``--porcelain`` lines ``!\\t<src>:<dst>\\t<summary>``."""
    refused = {}
    for line in porcelain.splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and parts[0] == "!":
            refused[parts[1].rpartition(":")[2]] = parts[2].strip()
    return refused


def missing_objects(repo: Path, oids: Sequence[str]) -> str | None:
    """None if the full history of every oid is present in ``repo``; else git's complaint."""
    if not oids:
        return None
    wanted = "".join(f"{validate_oid(oid)}\n" for oid in oids).encode()
    result = run_git(["rev-list", "--objects", "--missing=error", "--quiet", "--stdin"], cwd=repo,
                     input=wanted, check=False)
    if result.returncode == 0:
        return None
    return (result.stderr.strip().splitlines() or [f"git rev-list exited {result.returncode}"])[-1]


def materialize(mirror: Path, refs: Mapping[str, str], dest: Path, main: str | None = None) -> None:
    """Create ``dest``: a standalone bare repository holding exactly ``refs`` (objects copied, not
    borrowed), built beside it and renamed into place. ``dest`` must not exist or be an empty directory.
    Its HEAD names the branch ``main`` when ``refs`` hold it (a clone checks out the original main branch)."""
    wanted = validate_refs(refs)
    dest = Path(dest).absolute()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise InvalidInput(f"{dest} already exists and is not empty")
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".tmp-{dest.name}-"))
    try:
        view, copy = work / "view.git", work / "copy.git"
        populate_view(view, mirror, wanted, main)
        # --no-local: a real pack transfer, so the copy owns its objects (no alternates, no hardlinks).
        run_git(["clone", "--quiet", "--mirror", "--no-local", "--no-hardlinks", str(view), str(copy)])
        run_git(["remote", "remove", "origin"], cwd=copy)
        if repository_refs(copy) != wanted:
            raise GitPermanentError("the copy does not hold exactly the snapshot's refs")
        os.rename(copy, dest)
        fsync_dir(dest.parent)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def repository_refs(repo: Path) -> dict[str, str]:
    """refs/heads/* and refs/tags/* of any repository, as ``git show-ref`` prints them."""
    out = run_git(["for-each-ref", "--format=%(objectname) %(refname)", "refs/heads/", "refs/tags/"], cwd=repo).text
    return {name: oid for oid, name in (line.split(" ", 1) for line in out.splitlines() if line)}


def verify_copy(repo: Path, refs: Mapping[str, str]) -> list[str]:
    """Problems with a restored copy: a full ``git fsck``, then every ref compared with ``refs``."""
    problems = []
    try:
        fsck(repo)
    except GitPermanentError as exc:
        problems.append(f"git fsck failed: {(exc.stderr or str(exc)).strip().splitlines()[-1]}")
    held = repository_refs(repo)
    for ref in sorted(set(refs) | set(held)):
        if held.get(ref) != refs.get(ref):
            problems.append(f"{ref} is {held.get(ref) or 'missing'} in the copy, "
                            f"{refs.get(ref) or 'absent'} in the snapshot")
    return problems
