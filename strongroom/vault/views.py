"""Snapshot views and bundles: a snapshot's refs, materialised without copying objects.

A view is a tiny bare repository whose ``objects/info/alternates`` borrows the mirror's objects
and whose ``packed-refs`` holds exactly the snapshot's refs, so serving or cloning it yields
exactly that point in time. Views are built in a temp directory and renamed into place, so a
reader sees either no view or a complete one.
"""
from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Mapping

from ..errors import Conflict, GitPermanentError, InvalidInput
from .git import run_git
from .journal import fsync_dir
from .maintenance import configure

_VIEW_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_OID = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
SNAPSHOT_PREFIXES = ("refs/heads/", "refs/tags/")
_HEAD_PREFERENCE = ("refs/heads/main", "refs/heads/master")


def validate_refs(refs: Mapping[str, str]) -> dict[str, str]:
    """Refs as a plain dict, checked: only heads/tags, well-formed names and object ids."""
    return {validate_ref_name(name): validate_oid(oid) for name, oid in refs.items()}


def validate_ref_name(name: str) -> str:
    """A branch or tag ref name that git would accept (refs/heads/... or refs/tags/...)."""
    if not isinstance(name, str) or not name.startswith(SNAPSHOT_PREFIXES) or ".." in name or "//" in name \
            or name.endswith((".lock", "/", ".")) or "@{" in name or "/." in name \
            or any(ord(c) < 0x21 or c in "~^:?*[\\\x7f" for c in name):
        raise InvalidInput(f"not a branch or tag ref: {name!r}")
    return name


def validate_oid(oid: str) -> str:
    """A full lower-case hex object id (SHA-1 or SHA-256)."""
    if not isinstance(oid, str) or not _OID.match(oid):
        raise InvalidInput("not a full object id")
    return oid


def validate_view_id(view_id: str) -> str:
    """A snapshot id usable as a directory name (no separators, no dot-dot)."""
    if not _VIEW_ID.match(view_id) or ".." in view_id:
        raise InvalidInput("invalid snapshot id")
    return view_id


def choose_head(refs: Mapping[str, str], main: str | None = None) -> str:
    """HEAD's target: the repository's main branch ``main`` when ``refs`` hold it, else main, else master,
    else the first branch (main when there is none)."""
    if main and f"refs/heads/{main}" in refs:
        return validate_ref_name(f"refs/heads/{main}")
    for preferred in _HEAD_PREFERENCE:
        if preferred in refs:
            return preferred
    branches = sorted(r for r in refs if r.startswith("refs/heads/"))
    return branches[0] if branches else _HEAD_PREFERENCE[0]


def build_view(mirror: Path, views_dir: Path, view_id: str, refs: Mapping[str, str]) -> Path:
    """The view repository for ``view_id`` (created atomically on first use, then reused)."""
    validate_view_id(view_id)
    wanted = validate_refs(refs)
    final = views_dir / f"{view_id}.git"
    if not final.is_dir():
        views_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=views_dir, prefix=f".tmp-{view_id}-"))
        try:
            populate_view(tmp, mirror, wanted)
            _rename_into_place(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if view_refs(final) != wanted:
        raise Conflict(f"snapshot view {view_id} exists with different refs")
    return final


def _rename_into_place(tmp: Path, final: Path) -> None:
    try:
        os.rename(tmp, final)
    except OSError as exc:  # another process finished the same view first: keep theirs
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
    fsync_dir(final.parent)


def populate_view(path: Path, mirror: Path, refs: Mapping[str, str], main: str | None = None) -> None:
    """Turn the empty directory ``path`` into a view of ``refs`` borrowing ``mirror``'s objects (HEAD: see
    ``choose_head``)."""
    run_git(["init", "--quiet", "--bare", "--template=", str(path)])
    info = path / "objects" / "info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "alternates").write_text(f"{(mirror / 'objects').resolve()}\n")
    configure(path)
    lines = "".join(f"create {name} {oid}\n" for name, oid in sorted(refs.items()))
    # update-ref checks that every object exists; reflogs would be noise in a read-only view.
    run_git(["-c", "core.logAllRefUpdates=false", "update-ref", "--stdin"], cwd=path, input=lines.encode())
    run_git(["pack-refs", "--all"], cwd=path)  # packed-refs with correct peeled tag lines
    run_git(["symbolic-ref", "HEAD", choose_head(refs, main)], cwd=path)


def view_refs(path: Path) -> dict[str, str]:
    """The refs a view holds, read from its packed-refs without starting git."""
    try:
        text = (path / "packed-refs").read_text()
    except FileNotFoundError:
        text = ""
    refs = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", "^")):
            oid, name = line.split(" ", 1)
            refs[name] = oid
    return refs


def make_bundle(mirror: Path, scratch: Path, refs: Mapping[str, str], dest: Path, main: str | None = None) -> None:
    """Write a verified git bundle of exactly ``refs`` (plus HEAD, the branch ``main`` if held) to ``dest``,
    atomically."""
    wanted = validate_refs(refs)
    if not wanted:
        raise InvalidInput("cannot bundle an empty set of refs")
    dest = dest.absolute()
    scratch.mkdir(parents=True, exist_ok=True)
    view = Path(tempfile.mkdtemp(dir=scratch, prefix=".tmp-bundle-"))
    partial = dest.parent / f".tmp-{dest.name}-{secrets.token_hex(4)}"
    try:
        populate_view(view, mirror, wanted, main)
        names = sorted(wanted)
        if choose_head(wanted, main) in wanted:
            names.insert(0, "HEAD")  # so `git clone x.bundle` checks out a branch
        run_git(["bundle", "create", "--quiet", str(partial), "--stdin"], cwd=view,
                input=("\n".join(names) + "\n").encode())
        _verify_bundle(view, partial)
        _fsync_file(partial)
        os.replace(partial, dest)
        fsync_dir(dest.parent)
    finally:
        partial.unlink(missing_ok=True)
        shutil.rmtree(view, ignore_errors=True)


def _verify_bundle(repo: Path, bundle: Path) -> None:
    result = run_git(["bundle", "verify", "--quiet", str(bundle)], cwd=repo, check=False)
    if result.returncode != 0:
        raise GitPermanentError("bundle failed verification", returncode=result.returncode,
                                stderr=result.stderr[-2000:])


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
