"""The embedded broker: kombu's filesystem transport, made crash- and race-safe.

Upstream writes a message in place (open, lock, write) while consumers list the folder and move
files away without taking the lock, so a consumer can pick up a half-written, empty file and the
worker dies on a JSON error. Here a message is written to a hidden temporary name, fsynced and
renamed into place (atomic on one file system), and consumers claim a message by renaming it into
a "claimed" folder on the same file system, so exactly one consumer gets each complete message.

Exchange tables (which queue is bound to which exchange) have the same kind of race upstream: the
first binder creates the file empty ("wb") before it takes the lock, so a second worker starting at
the same moment (``strongroom run`` starts two) reads an empty file and dies on a JSON error. Here the
file is created without truncation and only read or written under its lock, and an empty table
reads as no bindings, exactly like a table that does not exist yet.
"""
from __future__ import annotations

import os
import uuid
from time import monotonic

from kombu.transport import filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads
from queue import Empty


class Channel(filesystem.Channel):
    """Atomic put, exclusive claim."""

    def _put(self, queue, payload, **kwargs):
        name = f"{int(round(monotonic() * 1000)):015d}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        tmp = os.path.join(self.data_folder_out, f".{name}.tmp")  # never matches a queue's pattern
        with open(tmp, "wb") as fh:
            fh.write(str_to_bytes(dumps(payload)))
            fh.flush()
            os.fsync(fh.fileno())
        os.rename(tmp, final)

    def _queue_bind(self, exchange, routing_key, pattern, queue):
        entry = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        path = self._exchange_file(exchange)
        self.control_folder.mkdir(exist_ok=True)
        with os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT, 0o666), "rb+", buffering=0) as fh:
            filesystem.lock(fh, filesystem.LOCK_EX)
            try:
                table = _table(fh.read())
                if entry not in table:
                    table.insert(0, entry)
                    fh.seek(0)
                    fh.truncate()
                    fh.write(str_to_bytes(dumps(table)))
                    os.fsync(fh.fileno())
            finally:
                filesystem.unlock(fh)

    def get_table(self, exchange):
        try:
            with open(self._exchange_file(exchange), "rb") as fh:
                filesystem.lock(fh, filesystem.LOCK_SH)
                try:
                    return _table(fh.read())
                finally:
                    filesystem.unlock(fh)
        except FileNotFoundError:
            return []

    def _claimed_folder(self) -> str:
        folder = os.path.join(os.path.dirname(os.path.abspath(self.data_folder_in)), "claimed")
        os.makedirs(folder, exist_ok=True)
        return folder

    def _get(self, queue):
        wanted = f"{queue}.msg"
        claimed = self._claimed_folder()
        for filename in sorted(os.listdir(self.data_folder_in)):
            if filename.startswith(".") or filename.partition(".")[2] != wanted:
                continue
            target = os.path.join(claimed, filename)
            try:
                os.rename(os.path.join(self.data_folder_in, filename), target)
            except OSError:
                continue  # another consumer claimed it first
            with open(target, "rb") as fh:
                payload = fh.read()
            os.remove(target)
            return loads(bytes_to_str(payload))
        raise Empty()


def _table(raw: bytes) -> list:
    """An exchange table's bindings; a file still being created (empty) has none."""
    return [filesystem.exchange_queue_t(*q) for q in loads(bytes_to_str(raw))] if raw.strip() else []


class Transport(filesystem.Transport):
    Channel = Channel
    driver_type = "filesystem"
    driver_name = "strongroom-filesystem"
