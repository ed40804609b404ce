"""``X-Hub-Signature`` of repository and workspace webhooks: HMAC-SHA256 over the raw body.

Verified on the bytes exactly as received, before any parsing, in constant time (reference §14).
"""
from __future__ import annotations

import hashlib
import hmac
import re

from ..errors import AuthError

SIGNATURE_HEADER = "X-Hub-Signature"
_SIGNATURE_RE = re.compile(r"sha256=([0-9a-fA-F]{64})")


def hub_signature(secret: str, body: bytes) -> str:
    """The header value Bitbucket sends: ``sha256=<lower-hex HMAC-SHA256(secret, body)>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_hub_signature(secret: str, body: bytes, header: str | None) -> None:
    """Raise AuthError unless ``header`` is the signature of ``body`` under ``secret``."""
    if not secret:
        raise AuthError("no webhook secret is configured for this workspace", code="no_hook_secret")
    match = _SIGNATURE_RE.fullmatch((header or "").strip())
    if match is None:
        raise AuthError("X-Hub-Signature is missing or malformed (expected sha256=<hex>)", code="bad_signature")
    expected = hub_signature(secret, body)
    if not hmac.compare_digest(expected.encode(), ("sha256=" + match.group(1).lower()).encode()):
        raise AuthError("X-Hub-Signature does not match the body", code="bad_signature")
