"""Bare mirrors of upstream repositories, keyed by UUID, that never lose a tip once seen.

Write order (restic's): objects (fetch) -> keep refs (``refs/strongroom/keep/<oid>``, a namespace
no fetch refspec writes to, so ``--prune`` never touches it) -> durable -> journal entry. Every
tip a mirror ever held stays reachable, whatever happens upstream (force-push, deleted branch,
moved tag).
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping
from urllib.parse import urlsplit

from ..errors import InvalidInput
from . import maintenance, views
from .git import GitCredentials, RefNameConflict, run_git
from .journal import SnapshotEntry, append_entry, fsync_dir, read_entries, read_json, write_json_atomic

log = logging.getLogger(__name__)

KEEP_PREFIX = "refs/strongroom/keep/"
LIVE_PREFIXES = ("refs/heads/", "refs/tags/")
FETCH_REFSPECS = ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
PACK_REFS_THRESHOLD = 100
_SCHEMES = ("https", "http", "file")
# Give up on a connection that moves less than 1 KB/s for two minutes, instead of hanging until
# the task timeout; that surfaces as a transient error and the sync is retried.
_NETWORK_CONFIG = ("-c", "http.lowSpeedLimit=1000", "-c", "http.lowSpeedTime=120")
_FETCH_OPTIONS = ("--prune", "--no-tags", "--no-write-fetch-head", "--no-show-forced-updates",
                  "--no-auto-maintenance", "--no-auto-gc", "--no-recurse-submodules", "--quiet")


@dataclass(frozen=True)
class SyncResult:
    """Live refs before and after a sync, and each changed ref as (old, new); None = absent."""

    before: dict[str, str]
    after: dict[str, str]
    changes: dict[str, tuple[str | None, str | None]]

    @property
    def changed(self) -> bool:
        """True when any head or tag moved, appeared or disappeared."""
        return bool(self.changes)


def diff_refs(before: Mapping[str, str], after: Mapping[str, str]) -> dict[str, tuple[str | None, str | None]]:
    """Every ref whose value differs between two ref maps."""
    return {ref: (before.get(ref), after.get(ref))
            for ref in sorted(set(before) | set(after)) if before.get(ref) != after.get(ref)}


def check_remote_url(url: str) -> str:
    """Accept only http(s)/file URLs that carry no password (secrets never go into URLs)."""
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES or url.startswith("-") or any(c.isspace() or ord(c) < 32 for c in url):
        raise InvalidInput("remote URL must be an http(s) or file URL")
    if parts.password is not None:
        raise InvalidInput("remote URL must not contain credentials")
    return url


class Vault:
    """The directory holding every mirror: ``<root>/<workspace uuid>/<repository uuid>.git``."""

    def __init__(self, root: Path, *, git_timeout: float | None = None) -> None:
        self.root = Path(root)
        self.git_timeout = git_timeout

    def mirror_path(self, workspace_uuid: str, repository_uuid: str) -> Path:
        """Where a repository's mirror lives (UUIDs with or without braces; never names)."""
        return self.root / _uuid(workspace_uuid) / f"{_uuid(repository_uuid)}.git"

    def open(self, path: Path) -> Mirror:
        """The mirror at ``path``, created (atomically, with safe config) on first use."""
        maintenance.require_git()
        path = Path(path)
        if not path.absolute().is_relative_to(self.root.absolute()):
            raise InvalidInput("mirror path is outside the vault")
        if not (path / "HEAD").is_file():
            _create_mirror(path)
        return Mirror(path, timeout=self.git_timeout)

    def mirrors(self) -> Iterator[Path]:
        """Every mirror directory under the root, sorted."""
        yield from sorted(p for p in self.root.glob("*/*.git") if (p / "HEAD").is_file())


def _uuid(value: str) -> str:
    try:
        return str(uuid.UUID(value.strip().strip("{}")))
    except (ValueError, AttributeError):
        raise InvalidInput(f"not a UUID: {value!r}") from None


def _create_mirror(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".tmp-{path.name}-"))
    try:
        run_git(["init", "--quiet", "--bare", "--template=", str(tmp)])
        maintenance.configure(tmp)
        (tmp / "strongroom").mkdir()
        try:
            os.rename(tmp, path)
        except OSError:
            if not (path / "HEAD").is_file():
                raise  # not a lost race with another creator
        fsync_dir(path.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class Mirror:
    """One bare mirror: live heads/tags, keep refs, the snapshot journal and the manifest."""

    def __init__(self, path: Path, *, timeout: float | None = None) -> None:
        self.path = Path(path)
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"Mirror({str(self.path)!r})"

    @property
    def meta_dir(self) -> Path:
        """Strongroom's own files inside the mirror (journal, manifest, views)."""
        return self.path / "strongroom"

    def live_refs(self) -> dict[str, str]:
        """refs/heads/* and refs/tags/* -> object id as ``git show-ref`` prints it (tags unpeeled)."""
        return self._refs(*LIVE_PREFIXES)

    def kept_oids(self) -> set[str]:
        """Object ids held by keep refs."""
        return {name[len(KEEP_PREFIX):] for name in self._refs(KEEP_PREFIX)}

    def _refs(self, *prefixes: str) -> dict[str, str]:
        out = run_git(["for-each-ref", "--format=%(objectname) %(refname)", *prefixes], cwd=self.path).text
        return {name: oid for oid, name in (line.split(" ", 1) for line in out.splitlines() if line)}

    def keep(self, oids: Iterable[str]) -> int:
        """Create the missing keep refs for ``oids`` in one transaction; return how many were made."""
        missing = sorted(set(oids) - self.kept_oids())
        if not missing:
            return 0
        for oid in missing:
            views.validate_oid(oid)
        lines = "".join(f"create {KEEP_PREFIX}{oid} {oid}\n" for oid in missing)
        # No reflogs for keep refs: they never move, and each log would be one more file.
        run_git(["-c", "core.logAllRefUpdates=false", "update-ref", "--stdin"], cwd=self.path,
                input=lines.encode())
        return len(missing)

    def ls_remote(self, url: str, credentials: GitCredentials | None) -> dict[str, str]:
        """The remote's heads and tags (no peeled ``^{}`` entries)."""
        args = [*_NETWORK_CONFIG, "ls-remote", "--refs", "--heads", "--tags", "--end-of-options",
                check_remote_url(url)]
        out = run_git(args, cwd=self.path, env=_cred_env(credentials), timeout=self.timeout).text
        pairs = (line.split("\t", 1) for line in out.splitlines() if "\t" in line)
        return {name: oid for oid, name in pairs if name.startswith(LIVE_PREFIXES) and not name.endswith("^{}")}

    def sync(self, url: str, credentials: GitCredentials | None) -> SyncResult:
        """Keep current tips, fetch heads+tags with prune, keep the new tips; report what changed."""
        check_remote_url(url)
        before = self.live_refs()
        self.keep(before.values())
        self._fetch(url, credentials, negotiate=bool(before))
        after = self.live_refs()
        added = self.keep(after.values())
        changes = diff_refs(before, after)
        if len(changes) > PACK_REFS_THRESHOLD or added > PACK_REFS_THRESHOLD:
            maintenance.pack_refs(self.path)
        self._repair_head(after)
        return SyncResult(before=before, after=after, changes=changes)

    def _fetch(self, url: str, credentials: GitCredentials | None, *, negotiate: bool) -> None:
        tips = ["--negotiation-tip=refs/heads/*", "--negotiation-tip=refs/tags/*"] if negotiate else []
        head = [*_NETWORK_CONFIG, "-c", "advice.fetchShowForcedUpdates=false", "fetch", *_FETCH_OPTIONS, *tips]
        tail = ["--end-of-options", url, *FETCH_REFSPECS]
        env = _cred_env(credentials)
        try:
            run_git([*head, "--atomic", *tail], cwd=self.path, env=env, timeout=self.timeout)
        except RefNameConflict:
            # An atomic transaction cannot delete `a` and create `a/b` (or the reverse) at once.
            # Without --atomic git prunes first, then updates; the old tips are already kept.
            log.warning("ref name conflict in %s; retrying the fetch without --atomic", self.path.name)
            run_git([*head, *tail], cwd=self.path, env=env, timeout=self.timeout)

    def _repair_head(self, live: Mapping[str, str]) -> None:
        """Point HEAD at an existing branch when it dangles (what a clone of the mirror checks out)."""
        current = run_git(["symbolic-ref", "-q", "HEAD"], cwd=self.path, check=False).text.strip()
        if current not in live and any(r.startswith("refs/heads/") for r in live):
            self.set_head(views.choose_head(live))

    def set_head(self, ref: str) -> None:
        """Point HEAD at a branch, e.g. the repository's main branch as the host reports it."""
        views.validate_ref_name(ref)
        run_git(["symbolic-ref", "HEAD", ref], cwd=self.path)

    def record_snapshot(self, entry: SnapshotEntry) -> None:
        """Append a journal entry once every object it names is kept and durable."""
        refs = views.validate_refs(entry.refs)
        self.keep(refs.values())
        self._harden(refs.values())
        append_entry(self.meta_dir / "journal.jsonl", entry)

    def _harden(self, oids: Iterable[str]) -> None:
        """fsync what git's core.fsync leaves out: directories that received renames (and the
        keep-ref files themselves, in case this git's core.fsync lacks ``reference``)."""
        for oid in set(oids):
            loose = self.path / f"{KEEP_PREFIX}{oid}"
            if loose.is_file():
                _fsync_path(loose, os.O_RDONLY)
        for directory in (self.path / KEEP_PREFIX, self.path / "refs/strongroom", self.path / "refs",
                          self.path / "objects/pack", *self.path.glob("objects/[0-9a-f][0-9a-f]"), self.path):
            if directory.is_dir():
                fsync_dir(directory)
        if (self.path / "packed-refs").is_file():
            _fsync_path(self.path / "packed-refs", os.O_RDONLY)

    def journal(self) -> list[SnapshotEntry]:
        """Every recorded snapshot, oldest first (a torn last line from a crash is ignored)."""
        return read_entries(self.meta_dir / "journal.jsonl")

    def write_manifest(self, data: Mapping[str, Any]) -> None:
        """Atomically replace the manifest that maps this directory to workspace/repository names."""
        write_json_atomic(self.meta_dir / "manifest.json", data)

    def read_manifest(self) -> dict[str, Any]:
        """The manifest, or {} if none was written."""
        return read_json(self.meta_dir / "manifest.json")

    def size_bytes(self) -> int:
        """Apparent size of everything in the mirror directory."""
        return maintenance.disk_usage(self.path)

    def check_connectivity(self) -> None:
        """Cheap check that every ref's history is present; GitPermanentError otherwise."""
        maintenance.check_connectivity(self.path)

    def check_new_history(self, new_tips: Iterable[str], old_tips: Iterable[str]) -> None:
        """Incremental connectivity check after a sync: walk only what the new tips add over the old
        ones (cost grows with the change, not with the history); GitPermanentError if anything is missing."""
        lines = [oid for oid in set(new_tips)] + [f"^{oid}" for oid in set(old_tips)]
        if lines:
            run_git(["rev-list", "--objects", "--quiet", "--stdin"], cwd=self.path,
                    input=("\n".join(lines) + "\n").encode(), timeout=self.timeout)

    def fsck(self) -> None:
        """Full object check; GitPermanentError on any problem."""
        maintenance.fsck(self.path)

    def maintain(self) -> None:
        """Pack refs, geometric repack, commit-graph, crash-garbage cleanup. Never prunes."""
        maintenance.maintain(self.path)

    def snapshot_view(self, snapshot_id: str, refs: Mapping[str, str]) -> Path:
        """A cached bare repo holding exactly ``refs`` and borrowing this mirror's objects."""
        return views.build_view(self.path, self.meta_dir / "views", snapshot_id, refs)

    def bundle(self, refs: Mapping[str, str], dest: Path, main: str | None = None) -> None:
        """Write a verified bundle of exactly ``refs`` (and HEAD: the branch ``main`` if held) to ``dest``."""
        views.make_bundle(self.path, self.meta_dir / "tmp", refs, dest, main)


def _cred_env(credentials: GitCredentials | None) -> dict[str, str] | None:
    return credentials.env() if credentials is not None else None


def _fsync_path(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
