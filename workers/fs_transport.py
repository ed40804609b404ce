"""The embedded broker: kombu's filesystem transport, made crash- and race-safe.

Upstream writes a message in place (open, lock, write) while consumers list the folder and move
files away without taking the lock, so a consumer can pick up a half-written, empty file and the
worker dies on a JSON error. Here a message is written to a hidden temporary name, fsynced and
renamed into place (atomic on one file system), and consumers claim a message by renaming it into
a "claimed" folder on the same file system, so exactly one consumer gets each complete message.
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


class Transport(filesystem.Transport):
    Channel = Channel
    driver_type = "filesystem"
    driver_name = "strongroom-filesystem"
