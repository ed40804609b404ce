"""The fake Forge platform's credentials: its RSA signing keys (JWKS), invocation tokens and system tokens.

Independent of Strongroom's verification code: PyJWT + cryptography only. FIT claims follow the
Forge Remote invocation contract (reference §6, §15.2); negative cases (unknown key, HS256, none,
wrong audience/issuer, expired) are minted on request.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ISSUER = "forge/invocation-token"
FIT_LIFETIME = 25  # seconds; the documented example's exp - iat


@dataclass
class SystemToken:
    """An app system token (`x-forge-oauth-system`): an opaque JWT with `exp`, valid for REST and git."""

    token: str = field(repr=False)
    workspace_uuid: str
    installation_id: str
    expires_at: float
    revoked: bool = False

    def valid(self) -> bool:
        return not self.revoked and time.time() < self.expires_at


class ForgeKeys:
    """RSA keys with `kid`s; the JWKS publishes the public halves (old keys stay until dropped)."""

    def __init__(self) -> None:
        self._keys: dict[str, rsa.RSAPrivateKey] = {}
        self.current_kid = ""
        self._lock = threading.Lock()
        self.rotate()

    def rotate(self) -> str:
        """Add a new key and sign with it from now on; returns its kid."""
        kid = f"forge-{secrets.token_hex(6)}"
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        with self._lock:
            self._keys[kid] = key
            self.current_kid = kid
        return kid

    def drop(self, kid: str) -> None:
        with self._lock:
            self._keys.pop(kid, None)

    def jwks(self) -> dict:
        with self._lock:
            items = list(self._keys.items())
        keys = []
        for kid, key in items:
            jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
            keys.append(dict(jwk, kid=kid, use="sig", alg="RS256"))
        return {"keys": keys}

    def private(self, kid: str | None = None) -> tuple[str, rsa.RSAPrivateKey]:
        with self._lock:
            kid = kid or self.current_kid
            return kid, self._keys[kid]


def fit_claims(*, app_id: str, installation_id: str, api_base_url: str, workspace_uuid: str, module_key: str,
               environment_id: str, now: float | None = None, lifetime: int = FIT_LIFETIME,
               ui: bool = False, principal: str | None = None) -> dict:
    """The claims of a Forge Invocation Token for one installation and module."""
    iat = int(now if now is not None else time.time())
    context = {"name": "bitbucket", "apiBaseUrl": api_base_url, "workspaceId": workspace_uuid.strip("{}")}
    claims = {"iss": ISSUER, "aud": app_id, "iat": iat, "nbf": iat, "exp": iat + lifetime, "jti": str(uuid.uuid4()),
              "app": {"id": app_id, "installationId": installation_id, "apiBaseUrl": api_base_url,
                      "appVersion": "1.0.0", "environment": {"type": "DEVELOPMENT", "id": environment_id},
                      "module": {"type": "core:endpoint", "key": module_key},
                      "installation": {"id": installation_id, "contexts": [context]}}}
    if ui:
        claims["context"] = {"workspaceId": workspace_uuid, "localId": str(uuid.uuid4()),
                             "extension": {"type": "bitbucket:workspaceSettingsMenuPage"}}
        if principal:
            claims["principal"] = principal
    return claims


def sign_fit(keys: ForgeKeys, claims: dict, *, kid: str | None = None, alg: str = "RS256",
             foreign_key: bool = False) -> str:
    """Sign FIT claims; `alg` HS256/none and `foreign_key` make the tokens a remote must refuse."""
    if alg == "none":
        return jwt.encode(claims, None, algorithm="none", headers={"kid": kid or keys.current_kid})
    if alg == "HS256":  # the classic confusion attack: the public key (PEM) as an HMAC secret
        _, key = keys.private(kid)
        public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
        return _hs256_by_hand(claims, public, kid or keys.current_kid)
    kid_used, key = keys.private(kid)
    if foreign_key:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        kid_used = kid or f"unknown-{secrets.token_hex(4)}"
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid_used, "typ": "JWT"})


def _hs256_by_hand(claims: dict, secret: bytes, kid: str) -> str:
    """PyJWT refuses to HMAC with a public key (rightly); an attacker would not, so build the token by hand."""
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{b64(json.dumps({'alg': 'HS256', 'kid': kid, 'typ': 'JWT'}).encode())}." \
                    f"{b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"


class SystemTokens:
    """Minted system tokens; a token is valid for its workspace until it expires or is revoked."""

    def __init__(self, ttl: float = 3 * 3600) -> None:
        self.ttl = ttl
        self._secret = secrets.token_bytes(32)
        self._tokens: dict[str, SystemToken] = {}
        self._lock = threading.Lock()

    def mint(self, workspace_uuid: str, installation_id: str) -> SystemToken:
        expires = time.time() + self.ttl
        token = jwt.encode({"sub": "forge-app-bot", "exp": int(expires), "iat": int(time.time()),
                            "jti": str(uuid.uuid4()), "ws": workspace_uuid}, self._secret, algorithm="HS256")
        rec = SystemToken(token, workspace_uuid, installation_id, expires)
        with self._lock:
            self._tokens[token] = rec
        return rec

    def lookup(self, token: str) -> SystemToken | None:
        with self._lock:
            rec = self._tokens.get(token)
        return rec if rec is not None and rec.valid() else None

    def revoke_workspace(self, workspace_uuid: str) -> None:
        with self._lock:
            for rec in self._tokens.values():
                if rec.workspace_uuid == workspace_uuid:
                    rec.revoked = True
