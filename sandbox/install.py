"""Connect install protocol, host side: descriptor validation and lifecycle callbacks (§1, §2)."""
from __future__ import annotations

import ipaddress
import json
import re
from urllib.parse import urlsplit

import requests

from .auth import ALLOWED_SCOPES, CONNECT_EVENTS, event_scope, expand_scopes, sign_host_jwt
from .delivery import app_relative, app_url
from .model import Installation, Workspace
from .render import Renderer

LIFECYCLE_TIMEOUT = 10  # the app must answer `installed` with 2xx within this many seconds
_KEY_RE = re.compile(r"^[a-zA-Z0-9._-]{1,64}$")


class InstallError(Exception):
    """The install was refused (bad descriptor) or the app did not accept the `installed` callback."""


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_base_url(base_url: object) -> str:
    if not isinstance(base_url, str) or not base_url:
        raise InstallError("descriptor: baseUrl is required")
    parts = urlsplit(base_url)
    if parts.scheme == "https" and parts.hostname:
        return base_url
    # Real Bitbucket insists on https; the sandbox also accepts plain http on loopback for local tests.
    if parts.scheme == "http" and is_loopback(parts.hostname):
        return base_url
    raise InstallError(f"descriptor: baseUrl must be https (got {base_url!r})")


def validate_descriptor(d: object) -> tuple[str, ...]:
    """Check a descriptor as Bitbucket would; return the scopes the installation gets."""
    if not isinstance(d, dict):
        raise InstallError("descriptor: not a JSON object")
    key = d.get("key")
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise InstallError("descriptor: key is required (letters, digits, '.', '_', '-'; at most 64)")
    for name in ("name", "description"):
        if not isinstance(d.get(name), str) or not d[name].strip():
            raise InstallError(f"descriptor: {name} is required")
    _check_base_url(d.get("baseUrl"))
    auth = d.get("authentication")
    if not isinstance(auth, dict) or auth.get("type") != "jwt":
        raise InstallError('descriptor: authentication.type must be "jwt"')
    lifecycle = d.get("lifecycle")
    if not isinstance(lifecycle, dict) or not isinstance(lifecycle.get("installed"), str):
        raise InstallError("descriptor: lifecycle.installed is required")
    for name, url in lifecycle.items():
        if not isinstance(url, str):
            raise InstallError(f"descriptor: lifecycle.{name} must be a URL")
    if "contexts" in d and d["contexts"] != ["account"]:
        raise InstallError('descriptor: contexts must be ["account"] ("personal" was removed in 2023)')
    scopes = _check_scopes(d)
    _check_webhooks(d, scopes)
    return scopes


def _check_scopes(d: dict) -> tuple[str, ...]:
    if "scopes" not in d:
        return tuple(sorted(ALLOWED_SCOPES))  # omitting scopes means "all scopes" (§1.1)
    scopes = d["scopes"]
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise InstallError("descriptor: scopes must be a list of strings")
    unknown = sorted(set(scopes) - ALLOWED_SCOPES)
    if unknown:
        raise InstallError(f"descriptor: invalid scope(s) {', '.join(unknown)}")
    return tuple(dict.fromkeys(scopes))


def _check_webhooks(d: dict, scopes: tuple[str, ...]) -> None:
    modules = d.get("modules") or {}
    if not isinstance(modules, dict):
        raise InstallError("descriptor: modules must be an object")
    hooks = modules.get("webhooks") or []
    if not isinstance(hooks, list):
        raise InstallError("descriptor: modules.webhooks must be a list")
    granted = expand_scopes(scopes)
    for hook in hooks:
        if not isinstance(hook, dict) or not isinstance(hook.get("url"), str) or len(hook["url"]) > 2048:
            raise InstallError("descriptor: every webhook needs an event and a url (at most 2048 chars)")
        event = hook.get("event")
        if event == "*":
            continue  # the wildcard silently receives only what the scopes allow
        if event not in CONNECT_EVENTS:
            raise InstallError(f"descriptor: unknown webhook event {event!r}")
        if event_scope(event) not in granted:
            raise InstallError(f"descriptor: webhook {event} requires the {event_scope(event)!r} scope")


def fetch_descriptor(session: requests.Session, url: str) -> dict:
    """GET the descriptor (10 s timeout); it must be JSON."""
    try:
        resp = session.get(url, timeout=LIFECYCLE_TIMEOUT, headers={"Accept": "application/json"})
    except requests.RequestException as exc:
        raise InstallError(f"could not fetch descriptor {url}: {exc}") from None
    if resp.status_code != 200:
        raise InstallError(f"descriptor {url} answered {resp.status_code}")
    try:
        return resp.json()
    except ValueError:
        raise InstallError(f"descriptor {url} is not JSON") from None


def lifecycle_payload(event: str, inst: Installation, ws: Workspace, r: Renderer, *, public_key: str,
                      web_url: str, api_url: str) -> dict:
    """The body Bitbucket POSTs to a lifecycle URL (§2.1; `uninstalled` has no sharedSecret, §2.2)."""
    principal = dict(r.team(ws), is_active=True, created_on=ws.created_on, properties={},
                     has_2fa_enabled=None)
    body = {"productType": "bitbucket", "eventType": event, "key": inst.app_key, "clientKey": inst.client_key,
            "sharedSecret": inst.shared_secret, "publicKey": public_key, "baseUrl": web_url,
            "baseApiUrl": api_url, "principal": principal, "user": dict(principal),
            # the captured install carries the actor's uuid without braces
            "actor": {"type": "user", "uuid": ws.actor.uuid.strip("{}"), "account_id": ws.actor.account_id}}
    if event != "installed":
        del body["sharedSecret"]
    return body


def lifecycle_url(inst: Installation, event: str) -> str | None:
    url = (inst.descriptor.get("lifecycle") or {}).get(event)
    return app_url(inst.base_url, url) if url else None


def post_lifecycle(session: requests.Session, inst: Installation, url: str, payload: dict,
                   sign_with: str | None) -> requests.Response:
    """POST a lifecycle payload; signed HS256 with iss = aud = clientKey unless `sign_with` is None."""
    headers = {"Content-Type": "application/json"}
    if sign_with is not None:
        token = sign_host_jwt(inst.client_key, sign_with, "POST", app_relative(inst.base_url, url))
        headers["Authorization"] = f"JWT {token}"
    return session.post(url, data=json.dumps(payload).encode(), headers=headers, timeout=LIFECYCLE_TIMEOUT,
                        allow_redirects=False)
