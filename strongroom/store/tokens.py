"""An encrypted, database-backed cache of host access tokens (one per installation)."""
from __future__ import annotations

from .crypto import SecretBox
from .db import Database
from .models import Installation


_SEP = "\n"  # never part of a cache key or a token


class InstallationTokenCache:
    """Implements the host client's TokenCache on the installation row, encrypted at rest.

    The row holds one token, sealed together with the key it was cached under: a token exchanged
    for other scopes (another key, or a row written before keys were kept) is a miss, never reused.
    """

    def __init__(self, db: Database, box: SecretBox, installation_id: str) -> None:
        self._db, self._box, self._id = db, box, installation_id

    def get(self, key: str) -> tuple[str, float] | None:
        with self._db.session() as s:
            inst = s.get(Installation, self._id)
            if inst is None or not inst.token_enc or inst.token_expires_at is None:
                return None
            stored_key, sep, token = self._box.decrypt(inst.token_enc).partition(_SEP)
            if not sep or stored_key != key:
                return None
            return token, inst.token_expires_at

    def put(self, key: str, token: str, expires_at: float) -> None:
        with self._db.session() as s:
            inst = s.get(Installation, self._id)
            if inst is not None:
                inst.token_enc = self._box.encrypt(f"{key}{_SEP}{token}")
                inst.token_expires_at = expires_at

    def clear(self) -> None:
        with self._db.session() as s:
            inst = s.get(Installation, self._id)
            if inst is not None:
                inst.token_enc = None
                inst.token_expires_at = None
