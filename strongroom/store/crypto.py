"""Secrets at rest: Fernet (AES-128-CBC + HMAC) with keys derived from STRONGROOM_SECRET_KEY.

Several keys may be configured (``new,old``): the first encrypts, all decrypt, and
``rotate`` re-encrypts a value under the first key. Keys are derived with HKDF so the raw
secret key never touches data directly and each purpose gets its own key.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import PermanentError


class SecretDecryptError(PermanentError):
    """A stored secret could not be decrypted with any configured key."""

    code = "secret_undecryptable"


def derive_key(secret_key: str, purpose: str, length: int = 32) -> bytes:
    """Derive a purpose-specific key from the deployment secret key (HKDF-SHA256)."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=length, salt=b"strongroom", info=purpose.encode())
    return hkdf.derive(secret_key.encode())


class SecretBox:
    """Encrypts and decrypts short secrets (shared secrets, access tokens) for storage."""

    def __init__(self, secret_keys: Sequence[str]) -> None:
        if not secret_keys:
            raise ValueError("at least one secret key is required")
        self._fernet = MultiFernet([
            Fernet(base64.urlsafe_b64encode(derive_key(k, "secrets-at-rest-v1"))) for k in secret_keys
        ])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode("ascii")).decode()
        except (InvalidToken, ValueError) as exc:
            raise SecretDecryptError("stored secret cannot be decrypted with the configured keys") from exc

    def rotate(self, ciphertext: str) -> str:
        """Re-encrypt under the current (first) key."""
        try:
            return self._fernet.rotate(ciphertext.encode("ascii")).decode("ascii")
        except (InvalidToken, ValueError) as exc:
            raise SecretDecryptError("stored secret cannot be decrypted with the configured keys") from exc


def hash_token(token: str) -> str:
    """A stable one-way hash of a high-entropy bearer token (for lookup; the token is never stored)."""
    return hashlib.sha256(token.encode()).hexdigest()


def constant_time_equals(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
