"""A fake Forge platform for a Forge app with a remote backend (reference §1–§9, checklist §15).

It publishes a JWKS on its own origin, installs the app into workspaces (lifecycle events), sends
Bitbucket product events for every change the sandbox makes (bare or wrapped in `payload`, with
delays, duplicates and retries), scheduled ticks that bring fresh system tokens, the pre-uninstall
call, and proxies `invokeRemote` calls from the settings page. System tokens work as `Bearer` on REST
and as the `x-token-auth` password on git; Forge tokens are refused on the hooks API (not a Forge auth type).
"""
from __future__ import annotations

import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import requests
from flask import Flask, jsonify

from .auth import Principal
from .forge_events import forge_events, mark_retry
from .forge_tokens import ForgeKeys, SystemTokens, fit_claims, sign_fit
from .query import ApiError
from .servers import ServerThread
from .tokenmode import API_SCOPE_MAP, TOKEN_USER

if TYPE_CHECKING:  # pragma: no cover
    from .core import Sandbox

DEFAULT_SCOPES = ("read:app-system-token", "read:repository:bitbucket", "write:repository:bitbucket",
                  "read:pullrequest:bitbucket", "read:workspace:bitbucket")
DEFAULT_ROUTES = {"events": "/forge/events", "lifecycle": "/forge/lifecycle", "tick": "/forge/tick",
                  "uninstall": "/forge/uninstall"}
BACKEND_TIMEOUT, UI_TIMEOUT = 5.0, 25.0
MAX_RETRIES = 4


@dataclass
class ForgeInstall:
    workspace_uuid: str
    installation_id: str
    remote: str
    routes: dict[str, str]
    scopes: tuple[str, ...]
    environment_id: str
    state: str = "installed"  # installed | uninstalled
    granted_at: float = 0.0  # REST answers 403 to its tokens before this (permissions granted eventually)


@dataclass
class ForgeCall:
    """One call from Forge to the remote (all attempts)."""

    kind: str
    url: str
    body: dict
    statuses: list[int | None] = field(default_factory=list)

    @property
    def status(self) -> int | None:
        return self.statuses[-1] if self.statuses else None


class BridgeError(Exception):
    """What `invokeRemote` rejects with (non-2xx without a JSON body, or a 401)."""


class ForgePlatform:
    """The Forge side: keys, installs, events, ticks, the UI bridge; also a sandbox listener and credential."""

    def __init__(self, sb: "Sandbox") -> None:
        self.sb = sb
        self.app_id = f"ari:cloud:ecosystem::app/{uuid.uuid4()}"
        self.keys = ForgeKeys()
        self.tokens = SystemTokens()
        self.installs: dict[str, ForgeInstall] = {}
        self.calls: list[ForgeCall] = []
        self.members: dict[str, dict[str, str]] = {}  # workspace uuid -> account id -> permission
        self.envelope = "bare"  # or "payload": remote deliveries wrapped as {"payload": ...}
        self.duplicate_events = False
        self.event_delay = 0.0  # seconds before an event is sent (Forge may take minutes)
        self.retry_interval = 60.0  # seconds between redeliveries (scaled down in tests)
        self.http = requests.Session()
        self.http.trust_env = False
        self._server: ServerThread | None = None
        self._threads: list[threading.Thread] = []
        self._ticker: threading.Event | None = None
        self._lock = threading.Lock()

    # --- the JWKS origin -------------------------------------------------------------------
    def start(self) -> None:
        app = Flask("sandbox.forge")
        app.add_url_rule("/.well-known/jwks.json", "jwks", lambda: jsonify(self.keys.jwks()))
        self._server = ServerThread(app)
        self._server.start()

    def stop(self) -> None:
        self.stop_ticks()
        self.wait_idle()
        if self._server is not None:
            self._server.stop()
            self._server = None
        self.http.close()

    @property
    def jwks_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the Forge platform is not started")
        return f"{self._server.url}/.well-known/jwks.json"

    # --- installs ----------------------------------------------------------------------------
    def install(self, workspace: str, remote: str, *, manifest: dict | None = None,
                permission_delay: float = 0.0) -> ForgeCall:
        """`forge install`: a new installation id (also on reinstall), then `avi:forge:installed:app`."""
        ws = self.sb.workspace(workspace)
        routes, scopes = _from_manifest(manifest) if manifest else (dict(DEFAULT_ROUTES), DEFAULT_SCOPES)
        inst = ForgeInstall(ws.uuid, f"ari:cloud:ecosystem::installation/{uuid.uuid4()}", remote.rstrip("/"),
                            routes, tuple(scopes), str(uuid.uuid4()), granted_at=time.time() + permission_delay)
        with self._lock:
            self.installs[ws.uuid] = inst
        self.members.setdefault(ws.uuid, {ws.actor.account_id: "owner"})
        return self.lifecycle(workspace, "avi:forge:installed:app")

    def lifecycle(self, workspace: str, event_type: str) -> ForgeCall:
        """Send a lifecycle event (installed / upgraded) to the remote's lifecycle endpoint."""
        inst = self.install_of(workspace)
        body = {"eventType": event_type, "id": inst.installation_id, "installerAccountId": self._owner(inst),
                "app": {"id": self.app_id, "version": "1.0.0"}, "environment": {"id": inst.environment_id},
                "context": f"ari:cloud:bitbucket::workspace/{inst.workspace_uuid.strip('{}')}"}
        return self.call(workspace, "lifecycle", body)

    def uninstall(self, workspace: str) -> ForgeCall:
        """`forge uninstall`: the pre-uninstall call (best effort), then tokens stop working and ticks stop."""
        inst = self.install_of(workspace)
        call = self.call(workspace, "uninstall", {"context": {"moduleKey": "strongroom-pre-uninstall"}},
                         retries=False)
        inst.state = "uninstalled"
        self.tokens.revoke_workspace(inst.workspace_uuid)
        return call

    def install_of(self, workspace: str) -> ForgeInstall:
        ws = self.sb.workspace(workspace)
        with self._lock:
            inst = self.installs.get(ws.uuid)
        if inst is None:
            raise KeyError(f"the Forge app is not installed in {workspace!r}")
        return inst

    def _owner(self, inst: ForgeInstall) -> str:
        return next(a for a, p in self.members[inst.workspace_uuid].items() if p == "owner")

    # --- invocation tokens ---------------------------------------------------------------------
    def fit(self, workspace: str, module_key: str = "sr-events", *, ui: bool = False, principal: str | None = None,
            overrides: dict | None = None, **sign: object) -> str:
        """A FIT for this installation; `overrides` replace claims, `sign` picks kid/alg/foreign_key."""
        inst = self.install_of(workspace)
        claims = fit_claims(app_id=self.app_id, installation_id=inst.installation_id, api_base_url=self.sb.api_url,
                            workspace_uuid=inst.workspace_uuid, module_key=module_key,
                            environment_id=inst.environment_id, ui=ui, principal=principal)
        claims.update(overrides or {})
        return sign_fit(self.keys, claims, **sign)

    def system_token(self, workspace: str) -> str:
        """A fresh app system token (what Forge attaches as `x-forge-oauth-system`)."""
        inst = self.install_of(workspace)
        return self.tokens.mint(inst.workspace_uuid, inst.installation_id).token

    # --- calls to the remote ---------------------------------------------------------------------
    def call(self, workspace: str, route: str, body: dict, *, retries: bool = True, fit: str | None = None,
             system_token: bool = True) -> ForgeCall:
        """POST to `remote + route` with a FIT (+ system token); up to 4 redeliveries on failure."""
        inst = self.install_of(workspace)
        record = ForgeCall(route, inst.remote + inst.routes[route], body)
        with self._lock:
            self.calls.append(record)
        for attempt in range(MAX_RETRIES + 1 if retries else 1):
            if attempt:
                time.sleep(self.retry_interval)
                body = mark_retry(body, attempt, record.statuses[-1])
            headers = {"Authorization": f"Bearer {fit or self.fit(workspace, f'sr-{route}')}",
                       "x-b3-traceid": secrets.token_hex(8), "x-b3-spanid": secrets.token_hex(8)}
            if system_token and inst.state == "installed":
                headers["x-forge-oauth-system"] = self.system_token(workspace)
            try:
                resp = self.http.post(record.url, json=body, headers=headers, timeout=BACKEND_TIMEOUT,
                                      allow_redirects=False)
                record.statuses.append(resp.status_code)
            except requests.RequestException:
                record.statuses.append(None)
            if record.status is not None and 200 <= record.status < 300:
                break
        return record

    def tick(self, workspace: str) -> ForgeCall:
        """One scheduled trigger call: brings a fresh system token."""
        return self.call(workspace, "tick", {"context": {"moduleKey": "strongroom-token-refresh"}})

    def start_ticks(self, interval: float) -> None:
        """Tick every installed workspace every `interval` seconds until `stop_ticks`."""
        self.stop_ticks()
        stop = self._ticker = threading.Event()

        def loop() -> None:
            while not stop.wait(interval):
                for inst in list(self.installs.values()):
                    if inst.state == "installed":
                        self.tick(inst.workspace_uuid)

        threading.Thread(target=loop, name="forge-ticks", daemon=True).start()

    def stop_ticks(self) -> None:
        if self._ticker is not None:
            self._ticker.set()
            self._ticker = None

    def send_event(self, workspace: str, event: dict, *, envelope: str | None = None, delay: float | None = None,
                   duplicate: bool | None = None) -> None:
        """Deliver one product event in the background (delay, duplicate, retries as configured)."""
        wrapped = {"payload": event} if (envelope or self.envelope) == "payload" else event
        copies = 2 if (self.duplicate_events if duplicate is None else duplicate) else 1
        wait = self.event_delay if delay is None else delay

        def run() -> None:
            if wait:
                time.sleep(wait)
            for _ in range(copies):
                self.call(workspace, "events", wrapped)

        thread = threading.Thread(target=run, name="forge-event", daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Block until every background event delivery finished."""
        deadline = time.monotonic() + timeout
        with self._lock:
            threads, self._threads = self._threads, []
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    # --- the UI bridge ---------------------------------------------------------------------------
    def invoke_remote(self, workspace: str, path: str, *, method: str = "GET", body: dict | None = None,
                      principal: str | None = None) -> tuple[int, object]:
        """`invokeRemote({path, method, body})` from the settings page; returns (status, JSON body)."""
        inst = self.install_of(workspace)
        if body is not None and not isinstance(body, dict):
            raise BridgeError("body must be a JSON object")
        headers = {"Authorization": f"Bearer {self.fit(workspace, 'sr-ui', ui=True, principal=principal)}",
                   "x-forge-oauth-system": self.system_token(workspace),
                   "x-b3-traceid": secrets.token_hex(8), "x-b3-spanid": secrets.token_hex(8)}
        resp = self.http.request(method, inst.remote + path, json=body, headers=headers, timeout=UI_TIMEOUT,
                                 allow_redirects=False)
        if resp.status_code == 401:
            raise BridgeError("Remote could not verify the Forge Invocation Token")
        try:
            data = resp.json()
        except ValueError:
            if not 200 <= resp.status_code < 300:
                raise BridgeError(f"the remote answered {resp.status_code} without a JSON body") from None
            data = None
        return resp.status_code, data

    def add_member(self, workspace: str, permission: str = "member") -> str:
        """A user of the workspace (for the settings page's admin check); returns its account id."""
        ws = self.sb.workspace(workspace)
        account_id = secrets.token_hex(12)
        self.members.setdefault(ws.uuid, {ws.actor.account_id: "owner"})[account_id] = permission
        return account_id

    # --- sandbox listener: every change becomes Forge product events ------------------------------
    def wants(self, workspace_uuid: str, event_key: str) -> bool:
        inst = self.installs.get(workspace_uuid)
        return inst is not None and inst.state == "installed" and event_key.startswith("repo:")

    def deliver(self, workspace_uuid: str, event_key: str, data: dict) -> None:
        ws = self.sb.workspace(workspace_uuid)
        for event in forge_events(event_key, data, ws):
            self.send_event(workspace_uuid, event)

    # --- credentials: system tokens on REST and git --------------------------------------------
    def _principal(self, token: str) -> Principal | None:
        rec = self.tokens.lookup(token)
        if rec is None:
            return None
        inst = self.installs.get(rec.workspace_uuid)
        if inst is None or inst.state != "installed" or inst.installation_id != rec.installation_id:
            return None
        if time.time() < inst.granted_at:
            raise ApiError(403, "Your credentials lack one or more required privilege scopes.")
        scopes = frozenset(API_SCOPE_MAP[s] for s in inst.scopes if s in API_SCOPE_MAP)
        return Principal("forge-system", rec.workspace_uuid, scopes, rate_key=f"forge:{inst.installation_id}")

    def rest_principal(self, scheme: str, value: str) -> Principal | None:
        return self._principal(value) if scheme == "Bearer" else None

    def git_principal(self, username: str, password: str) -> Principal | None:
        return self._principal(password) if username == TOKEN_USER else None


def _from_manifest(manifest: dict) -> tuple[dict[str, str], list[str]]:
    """Routes and scopes as a deployed manifest declares them (the module a route serves decides its name)."""
    modules = manifest.get("modules", {})
    paths = {e["key"]: e.get("route", {}).get("path") for e in modules.get("endpoint", [])}
    routes = {}
    for trigger in modules.get("trigger", []):
        kind = "lifecycle" if any(e.startswith("avi:forge:") for e in trigger["events"]) else "events"
        routes[kind] = paths[trigger["endpoint"]]
    routes["tick"] = paths[modules["scheduledTrigger"][0]["endpoint"]]
    routes["uninstall"] = paths[modules["preUninstall"][0]["endpoint"]]
    return routes, list(manifest.get("permissions", {}).get("scopes", []))
