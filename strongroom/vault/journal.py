"""The append-only snapshot journal and small durable JSON files kept inside a mirror.

Every write here is flushed and fsynced together with its directory, so an entry that
``append_entry`` returned for survives a crash or power loss. A crash in the middle of an append
leaves at most one torn last line, which readers ignore and the next append cuts off.
"""
from __future__ import annotations

import json
import logging
import os
import secrets
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..errors import InvalidInput

log = logging.getLogger(__name__)

Change = tuple[str | None, str | None]


@dataclass(frozen=True)
class SnapshotEntry:
    """One point in time of a repository: its heads and tags, and what changed since the last sync."""

    id: str
    taken_at: datetime
    trigger: str
    refs: Mapping[str, str]
    changes: Mapping[str, Change] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The journal's JSON form (ISO 8601 UTC timestamp, changes as [old, new] pairs)."""
        return {
            "id": self.id,
            "taken_at": _iso_utc(self.taken_at),
            "trigger": self.trigger,
            "refs": dict(sorted(self.refs.items())),
            "changes": {ref: [old, new] for ref, (old, new) in sorted(self.changes.items())},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SnapshotEntry:
        """Parse one journal line's JSON object."""
        changes = {ref: (pair[0], pair[1]) for ref, pair in dict(data.get("changes") or {}).items()}
        return cls(id=str(data["id"]), taken_at=datetime.fromisoformat(data["taken_at"].replace("Z", "+00:00")),
                   trigger=str(data["trigger"]), refs=dict(data["refs"]), changes=changes)


def new_snapshot_id(now: datetime | None = None) -> str:
    """A time-sortable, path-safe snapshot id such as ``20240131T120000Z-3f9a1c2b``."""
    moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return f"{moment:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


def _iso_utc(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise InvalidInput("snapshot timestamps must be timezone-aware")
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def append_entry(path: Path, entry: SnapshotEntry) -> None:
    """Append one snapshot entry durably (see ``append_json_line``)."""
    append_json_line(path, entry.to_json())


def append_json_line(path: Path, data: Mapping[str, Any]) -> None:
    """Append one JSON object as a line, durably (file and new directories fsynced before returning)."""
    line = json.dumps(dict(data), separators=(",", ":"), sort_keys=True).encode() + b"\n"
    new_dir = not path.parent.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        _cut_torn_tail(fd)
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        fsync_dir(path.parent)
    if new_dir:
        fsync_dir(path.parent.parent)


def _cut_torn_tail(fd: int) -> None:
    """Drop a partial last line left by a crash, so the next line does not glue onto it."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    keep, end = 0, size
    while end > 0:
        start = max(0, end - 65536)
        cut = os.pread(fd, end - start, start).rfind(b"\n")
        if cut >= 0:
            keep = start + cut + 1
            break
        end = start
    # The torn bytes were never acknowledged to a caller: append_entry had not returned.
    os.ftruncate(fd, keep)
    log.warning("journal: dropped %d bytes of a torn line left by an interrupted write", size - keep)


def read_entries(path: Path) -> list[SnapshotEntry]:
    """Every complete entry, oldest first; a torn last line (crash mid-append) is ignored."""
    return list(_parse(path, read_lines(path)))


def read_lines(path: Path) -> list[bytes]:
    """Every complete line of an append-only file, oldest first (none if it does not exist); a torn last
    line (crash or append in progress) is left out."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    lines = data.split(b"\n")
    torn = lines.pop()  # b"" when the file ends with a newline, else an unfinished append
    if torn:
        log.info("journal %s: ignoring a torn last line", path)
    return lines


def _parse(path: Path, lines: Iterable[bytes]) -> Iterable[SnapshotEntry]:
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            yield SnapshotEntry.from_json(json.loads(raw))
        except (ValueError, KeyError, TypeError, IndexError):
            log.error("journal %s: line %d is unreadable; skipped", path, number)


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    """Replace ``path`` with ``data`` as JSON: temp file, fsync, rename, fsync the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = json.dumps(data, indent=2, sort_keys=True, default=str).encode() + b"\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".tmp-{path.name}-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; ``{}`` if the file does not exist."""
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    if not isinstance(data, dict):
        raise InvalidInput(f"{path.name} does not hold a JSON object")
    return data


def fsync_dir(path: Path) -> None:
    """fsync a directory so renames and creations inside it are durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
