"""Getting a repository out of Strongroom: a verified bundle of a snapshot (API), and the offline export
that needs nothing but the data directory (no environment, database, broker or Bitbucket).

Offline, each vault's ``strongroom/manifest.json`` names it (workspace and repository uuid/slug) and its
``strongroom/journal.jsonl`` lists every snapshot's refs, so a repository is found and exported from
files alone. Scratch work happens next to the destination, never inside the data directory; the one
write there is a line in the offline audit log (``audit.offline_log_path``), which the service imports.
"""
from __future__ import annotations

import json
import logging
import re
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from sqlalchemy import select

from . import audit
from .context import Context
from .errors import InvalidInput, NotFound, Unprocessable
from .repositories import stored_settings
from .store.models import Snapshot
from .vault.journal import SnapshotEntry, read_entries, read_json
from .vault.push import materialize
from .vault.views import make_bundle
from .workspace import get_repository

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
_UUID = re.compile(r"^\{?[0-9a-fA-F-]{36}\}?$")


def parse_time(value: object) -> datetime:
    """An ISO 8601 time (``Z`` or an offset; a time without one is taken as UTC)."""
    if not isinstance(value, str):
        raise InvalidInput("a time must be an ISO 8601 string")
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise InvalidInput(f"not an ISO 8601 time: {value!r}") from exc
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def choose_snapshot_row(s, repository_id: str, snapshot_id: str | None, at: datetime | None) -> Snapshot:
    """The snapshot named ``snapshot_id`` (of this repository), or the newest taken at or before ``at``."""
    if snapshot_id is not None:
        snap = s.get(Snapshot, snapshot_id)
        if snap is None or snap.repository_id != repository_id:
            raise NotFound("no such snapshot")
        return snap
    query = select(Snapshot).where(Snapshot.repository_id == repository_id)
    if at is not None:
        query = query.where(Snapshot.taken_at <= at)
    snap = s.scalars(query.order_by(Snapshot.taken_at.desc(), Snapshot.id.desc()).limit(1)).first()
    if snap is None:
        raise NotFound("no snapshot at or before that time" if at else "the repository has no snapshot yet")
    return snap


class BundleStream:
    """The bytes of a temporary bundle file, which is deleted when streamed or closed (even unstarted)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __iter__(self) -> Iterator[bytes]:
        try:
            with open(self.path, "rb") as handle:
                while chunk := handle.read(CHUNK):
                    yield chunk
        finally:
            self.close()

    def close(self) -> None:
        """Delete the temporary file (the WSGI server calls this when the response ends or is dropped)."""
        self.path.unlink(missing_ok=True)


@dataclass(frozen=True)
class BundleDownload:
    """A verified bundle waiting to be streamed."""

    path: Path
    filename: str
    size: int

    def chunks(self) -> BundleStream:
        """The bundle's bytes as a closable stream; the temporary file goes away afterwards."""
        return BundleStream(self.path)


def snapshot_bundle(ctx: Context, tenant_id: str, uuid: str, snapshot_id: str, *, actor: str) -> BundleDownload:
    """Build and verify a bundle of exactly one snapshot's refs, and record the export in the audit log."""
    with ctx.db.session() as s:
        repo = get_repository(s, tenant_id, uuid)
        snap = choose_snapshot_row(s, repo.id, snapshot_id, None)
        refs, path, slug, full_name = json.loads(snap.refs_json), repo.vault_path, repo.slug, repo.full_name
        main = (stored_settings(repo) or {}).get("mainbranch")
    if not refs:
        raise Unprocessable("this snapshot holds no refs; there is nothing to bundle")
    mirror = ctx.vault.open(ctx.vault.root / path)
    dest = mirror.meta_dir / "tmp" / f".tmp-download-{secrets.token_hex(8)}.bundle"
    dest.parent.mkdir(parents=True, exist_ok=True)
    mirror.bundle(refs, dest, main)  # `git bundle verify` passed before it is renamed into place
    with ctx.db.session() as s:
        audit.record(s, tenant_id, actor, "export", full_name, {"snapshot": snapshot_id, "format": "bundle",
                                                                "refs": len(refs)})
    return BundleDownload(dest, f"{slug}-{snapshot_id}.bundle", dest.stat().st_size)


# --- offline: the data directory alone --------------------------------------------------------------

@dataclass(frozen=True)
class FoundVault:
    """A vault found on disk and what its manifest says about it."""

    path: Path
    workspace: dict
    repository: dict


def _same_uuid(a: str, b: str) -> bool:
    return a.strip("{}").lower() == b.strip("{}").lower()


def _matches(names: dict, wanted: str) -> bool:
    """A manifest entry (uuid, slug) matches a UUID (braces optional) or a slug (any case)."""
    if _UUID.match(wanted):
        return _same_uuid(str(names.get("uuid", "")), wanted)
    return str(names.get("slug", "")).lower() == wanted.lower()


def scan_vaults(data_dir: Path) -> list[FoundVault]:
    """Every vault under ``<data_dir>/vaults`` with its manifest (directory names are UUIDs)."""
    found = []
    for path in sorted(Path(data_dir).glob("vaults/*/*.git")):
        if not (path / "HEAD").is_file():
            continue
        manifest = read_json(path / "strongroom" / "manifest.json")
        workspace = manifest.get("workspace") or {"uuid": path.parent.name, "slug": ""}
        repository = manifest.get("repository") or {"uuid": path.name[:-4], "slug": ""}
        found.append(FoundVault(path, workspace, repository))
    return found


def find_vault(data_dir: Path, workspace: str, repository: str) -> FoundVault:
    """The one vault matching ``workspace`` and ``repository`` (slugs or UUIDs)."""
    if not (Path(data_dir) / "vaults").is_dir():
        raise NotFound(f"{data_dir} holds no vaults/ directory")
    hits = [v for v in scan_vaults(data_dir) if _matches(v.workspace, workspace) and _matches(v.repository, repository)]
    if not hits:
        raise NotFound(f"no backup of {workspace}/{repository} in {data_dir}")
    if len(hits) > 1:
        names = ", ".join(f"{v.repository.get('uuid')} ({v.path})" for v in hits)
        raise InvalidInput(f"{repository!r} names several backed-up repositories; give the UUID: {names}")
    return hits[0]


def choose_entry(entries: list[SnapshotEntry], snapshot_id: str | None, at: datetime | None) -> SnapshotEntry:
    """The journal entry named ``snapshot_id``, else the newest at or before ``at``, else the newest."""
    if snapshot_id is not None:
        for entry in entries:
            if entry.id == snapshot_id:
                return entry
        raise NotFound(f"no snapshot {snapshot_id} in the journal")
    eligible = [e for e in entries if at is None or e.taken_at <= at]
    if not eligible:
        raise NotFound("no snapshot at or before that time" if at else "the journal holds no snapshot")
    return max(eligible, key=lambda e: (e.taken_at, e.id))


def export_offline(data_dir: Path, workspace: str, repository: str, *, snapshot_id: str | None = None,
                   at: datetime | None = None, to: Path | None = None, bundle: Path | None = None,
                   warn: Callable[[str], None] | None = None) -> SnapshotEntry:
    """Write one snapshot as a plain bare repository (``to``) or a verified bundle (``bundle``), then record
    it in the data directory's offline audit log (if that cannot be written, ``warn`` is told why)."""
    if (to is None) == (bundle is None):
        raise InvalidInput("give exactly one of --to and --bundle")
    vault = find_vault(data_dir, workspace, repository)
    entry = choose_entry(read_entries(vault.path / "strongroom" / "journal.jsonl"), snapshot_id, at)
    main = recorded_main_branch(vault)
    if to is not None:
        materialize(vault.path, entry.refs, Path(to), main)
        record_offline_export(data_dir, vault, entry, "repository", Path(to).absolute(), warn=warn)
        return entry
    dest = Path(bundle).absolute()
    _write_bundle(vault, entry, dest, main)
    record_offline_export(data_dir, vault, entry, "bundle", dest, warn=warn)
    return entry


def export_settings(data_dir: Path, workspace: str, repository: str) -> dict | None:
    """The repository settings its vault's manifest recorded (None if it recorded none)."""
    settings = find_vault(data_dir, workspace, repository).repository.get("settings")
    return settings if isinstance(settings, dict) and settings else None


def recorded_main_branch(vault: FoundVault) -> str | None:
    """The main branch the manifest recorded for the repository (an export's HEAD names it)."""
    settings = vault.repository.get("settings")
    main = settings.get("mainbranch") if isinstance(settings, dict) else None
    return main if isinstance(main, str) and main else None


def _write_bundle(vault: FoundVault, entry: SnapshotEntry, dest: Path, main: str | None = None) -> None:
    """A verified bundle of the entry's refs at ``dest``, built in scratch space next to it."""
    if not entry.refs:
        raise Unprocessable("that snapshot holds no refs; a bundle cannot be empty (use --to)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".tmp-export-"))
    try:
        make_bundle(vault.path, scratch, entry.refs, dest, main)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def record_offline_export(data_dir: Path, vault: FoundVault, entry: SnapshotEntry, kind: str, dest: Path, *,
                          warn: Callable[[str], None] | None = None) -> str | None:
    """Append a finished export to the offline audit log and return the line's id. A read-only data
    directory (a mounted copy in a disaster) never fails the export: ``warn`` hears it, with the line to
    append to the live data directory's log by hand, and None is returned."""
    line = audit.offline_export_line(vault.workspace, vault.repository, entry.id, len(entry.refs), kind, dest)
    try:
        audit.append_offline(data_dir, line)
    except OSError as exc:
        path = audit.offline_log_path(data_dir)
        (warn or log.warning)(
            f"the export succeeded but is NOT in the audit log: cannot write {path} ({exc.strerror or exc}). "
            f"To record it, append this line to {audit.OFFLINE_LOG} in the live data directory:\n"
            + json.dumps(line, separators=(",", ":"), sort_keys=True))
        return None
    return line["id"]
