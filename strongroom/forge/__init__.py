"""Forge Remote protocol primitives: the JWKS cache and Forge Invocation Token verification (no web framework)."""
from __future__ import annotations

from .fit import FIT_ISSUER, Invocation, normalize_app_id, verify_invocation_token
from .jwks import JwksCache, JwksUnavailable

__all__ = ["FIT_ISSUER", "Invocation", "JwksCache", "JwksUnavailable", "normalize_app_id",
           "verify_invocation_token"]
