"""`Sandbox`: a simulated Bitbucket Cloud host (web + API servers, Connect installs, webhooks)."""
from __future__ import annotations

import base64
import re
import secrets
import threading
import uuid
from pathlib import Path
from typing import Any, Callable

import requests

from .auth import TokenStore
from .delivery import BackgroundQueue, Deliverer, webhook_targets
from .events import EventBuilder
from .forge import ForgePlatform
from .hooks import HookStore
from .install import (InstallError, fetch_descriptor, lifecycle_payload, lifecycle_url, post_lifecycle,
                      validate_descriptor)
from .model import Delivery, Installation, Project, Repository, User, Workspace, new_uuid
from .query import RateLimiter
from .render import Renderer
from .repoops import RepoOpsMixin
from .servers import ServerThread
from .tokenmode import TokenMode

_SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,61}$")
_UNSET: Any = object()


class NotFound(KeyError):
    """No such workspace, repository or installation."""


class Sandbox(RepoOpsMixin):
    """A Bitbucket Cloud simulator with two real HTTP servers (web/git/OAuth and REST 2.0)."""

    def __init__(self, root: Path, *, app_secret: str | None = None, rate_limit: int | None = None,
                 rate_window: float = 3600.0, web_port: int = 0, api_port: int = 0) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.app_secret = app_secret
        self.tokens = TokenStore()
        self.limiter = RateLimiter(rate_limit, rate_window) if rate_limit else None
        self.deliverer = Deliverer()
        self.http = requests.Session()
        self.http.trust_env = False
        self.git_delay = 0.0
        self.down = False
        self.async_delivery = False  # True: webhooks go out from a background thread, in order
        self._lock = threading.RLock()
        self._workspaces: dict[str, Workspace] = {}
        self._repos: dict[str, Repository] = {}
        self._installs: dict[str, Installation] = {}  # clientKey -> current installation record
        self._pending: dict[str, Installation] = {}  # clientKey -> record whose `installed` is in flight
        self._last_secret: dict[str, str] = {}  # clientKey -> secret of the preceding `installed`
        self._ports = (web_port, api_port)
        self._web: ServerThread | None = None
        self._api: ServerThread | None = None
        self._background = BackgroundQueue()
        self.renderer: Renderer | None = None
        self.events: EventBuilder | None = None
        # Token mode and Forge (sandbox/tokenmode.py, hooks.py, forge.py): extra credentials for REST and
        # git, and extra receivers of every event the helpers fire.
        self.tokenmode = TokenMode(self)
        self.hooks = HookStore(self)
        self.forge = ForgePlatform(self)
        self.principal_providers: list = [self.tokenmode, self.forge]
        self.listeners: list = [self.hooks, self.forge]

    # --- servers ----------------------------------------------------------------------------
    def start(self) -> "Sandbox":
        from .rest import create_api_app
        from .web import create_web_app
        self._web = ServerThread(create_web_app(self), port=self._ports[0])
        self._api = ServerThread(create_api_app(self), port=self._ports[1])
        self._web.start()
        self._api.start()
        self.forge.start()
        self.renderer = Renderer(self.web_url, self.api_url)
        self.events = EventBuilder(self.renderer)
        return self

    def stop(self) -> None:
        self.wait_for_deliveries()
        self.forge.stop()
        for server in (self._web, self._api):
            if server is not None:
                server.stop()
        self._web = self._api = None
        self.http.close()
        self.deliverer.session.close()

    def __enter__(self) -> "Sandbox":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def web_url(self) -> str:
        if self._web is None:
            raise RuntimeError("Sandbox.start() has not been called")
        return self._web.url

    @property
    def api_url(self) -> str:
        if self._api is None:
            raise RuntimeError("Sandbox.start() has not been called")
        return self._api.url

    def set_down(self, down: bool = True) -> None:
        """Simulate an outage: REST, git and OAuth answer 503 while down (the servers stay up)."""
        self.down = bool(down)

    # --- workspaces and lookups -------------------------------------------------------------
    def create_workspace(self, slug: str, name: str | None = None) -> dict:
        """Create a workspace (with one default project and one acting user)."""
        if not _SLUG_RE.match(slug):
            raise ValueError(f"invalid workspace slug {slug!r}")
        with self._lock:
            if any(w.slug == slug for w in self._workspaces.values()):
                raise ValueError(f"workspace {slug!r} exists")
            actor = User(uuid=new_uuid(), account_id=secrets.token_hex(12), display_name=f"{slug} admin",
                         nickname=f"{slug}-admin", email=f"admin@{slug}.example")
            ws = Workspace(uuid=new_uuid(), slug=slug, name=name or slug, actor=actor)
            ws.projects["PROJ"] = Project(key="PROJ", uuid=new_uuid(), name="Default project")
            self._workspaces[ws.uuid] = ws
        return {"uuid": ws.uuid, "slug": ws.slug, "name": ws.name}

    def create_project(self, workspace: str, key: str, name: str | None = None) -> dict:
        """Add a project to a workspace (keys: letters, digits and `_`)."""
        ws = self.workspace(workspace)
        if not re.match(r"^[A-Za-z][A-Za-z0-9_]{0,127}$", key):
            raise ValueError(f"invalid project key {key!r}")
        with self._lock:
            if key in ws.projects:
                raise ValueError(f"project {key!r} exists in {ws.slug}")
            ws.projects[key] = Project(key=key, uuid=new_uuid(), name=name or key)
        return {"key": key, "uuid": ws.projects[key].uuid, "name": ws.projects[key].name}

    def delete_project(self, workspace: str, key: str) -> None:
        """Remove a project; like Bitbucket, only an empty one (and never the default project)."""
        ws = self.workspace(workspace)
        with self._lock:
            if key not in ws.projects:
                raise NotFound(f"no project {key!r} in {ws.slug}")
            if key == ws.default_project().key:
                raise ValueError("the default project cannot be deleted")
            if any(r.project_key == key for r in self.repositories(ws)):
                raise ValueError(f"project {key!r} still holds repositories")
            del ws.projects[key]

    def workspace(self, ident: str) -> Workspace:
        """A workspace by slug or `{uuid}` (braces optional)."""
        ws = self.find_workspace(ident)
        if ws is None:
            raise NotFound(f"no workspace {ident!r}")
        return ws

    def find_workspace(self, ident: str) -> Workspace | None:
        key = ident.strip().lower()
        with self._lock:
            for ws in self._workspaces.values():
                if key in (ws.slug, ws.uuid, ws.uuid.strip("{}")):
                    return ws
        return None

    def find_repository(self, ws: Workspace, ident: str) -> Repository | None:
        key = ident.strip().lower()
        with self._lock:
            for r in self._repos.values():
                if r.workspace_uuid == ws.uuid and key in (r.slug, r.uuid, r.uuid.strip("{}")):
                    return r
        return None

    def repository(self, workspace: str, repo: str) -> Repository:
        ws = self.workspace(workspace)
        r = self.find_repository(ws, repo)
        if r is None:
            raise NotFound(f"no repository {workspace}/{repo}")
        return r

    def workspace_slugs(self) -> list[str]:
        with self._lock:
            return [w.slug for w in self._workspaces.values()]

    def repositories(self, ws: Workspace) -> list[Repository]:
        with self._lock:
            return [r for r in self._repos.values() if r.workspace_uuid == ws.uuid]

    # --- installations ----------------------------------------------------------------------
    @property
    def installations(self) -> list[Installation]:
        with self._lock:
            return list(self._installs.values())

    def installation(self, workspace: str, app_key: str | None = None) -> Installation:
        """The active installation in `workspace` (of `app_key`, when several apps are installed)."""
        ws = self.workspace(workspace)
        for inst in self._active_installs(ws.uuid):
            if app_key is None or inst.app_key == app_key:
                return inst
        raise NotFound(f"no active installation in {workspace!r}")

    def _active_installs(self, workspace_uuid: str) -> list[Installation]:
        with self._lock:
            return [i for i in self._installs.values() if i.workspace_uuid == workspace_uuid and i.active]

    def jwt_candidates(self, iss: str, sub: str) -> list[Installation]:
        """Installations that may have signed an app JWT with this iss/sub (mid-install ones included)."""
        with self._lock:
            recs = [self._pending.get(sub), self._installs.get(sub)]
        return [i for i in recs if i is not None and i.usable and i.app_key == iss]

    def installation_usable(self, client_key: str) -> bool:
        with self._lock:
            recs = [self._pending.get(client_key), self._installs.get(client_key)]
        return any(i is not None and i.usable for i in recs)

    def install(self, workspace: str, descriptor_url: str, *, sign_first_install: bool = True) -> dict:
        """The Connect install flow: fetch + validate the descriptor, POST `installed`, activate."""
        ws = self.workspace(workspace)
        descriptor = fetch_descriptor(self.http, descriptor_url)
        scopes = validate_descriptor(descriptor)
        client_key = f"ari:cloud:bitbucket::app/{ws.uuid}/{descriptor['key']}"
        secret = self.app_secret or secrets.token_urlsafe(32)
        inst = Installation(client_key=client_key, app_key=descriptor["key"], shared_secret=secret,
                            workspace_uuid=ws.uuid, workspace=ws.slug, base_url=descriptor["baseUrl"],
                            descriptor=descriptor, descriptor_url=descriptor_url, scopes=scopes)
        with self._lock:
            previous = self._last_secret.get(client_key)
            self._pending[client_key] = inst
        # Re-installs (also after an uninstall) are signed with the preceding `installed` secret (§2.3).
        sign_with = previous if previous is not None else (secret if sign_first_install else None)
        try:
            payload = self._lifecycle_payload("installed", inst, ws)
            resp = post_lifecycle(self.http, inst, lifecycle_url(inst, "installed"), payload, sign_with)
        except requests.RequestException as exc:
            raise InstallError(f"installed callback failed: {exc}") from None
        finally:
            with self._lock:
                self._pending.pop(client_key, None)
        if not 200 <= resp.status_code < 300:
            inst.state = "failed"
            raise InstallError(f"the app answered the installed callback with {resp.status_code}")
        with self._lock:
            inst.state = "active"
            self._installs[client_key] = inst
            self._last_secret[client_key] = secret
        return {"client_key": client_key, "shared_secret": secret}

    def uninstall(self, workspace: str, app_key: str | None = None) -> None:
        """POST `uninstalled` (signed with the stored secret); deactivate and revoke tokens whatever the answer."""
        inst = self.installation(workspace, app_key)
        ws = self.workspace(inst.workspace_uuid)
        url = lifecycle_url(inst, "uninstalled")
        with self._lock:
            inst.state = "uninstalled"
        self.tokens.revoke_installation(inst.client_key)
        if url:
            try:
                post_lifecycle(self.http, inst, url, self._lifecycle_payload("uninstalled", inst, ws),
                               inst.shared_secret)
            except requests.RequestException:
                pass

    def post_lifecycle(self, workspace: str, event: str, *, secret: str | None = _UNSET,
                       payload_overrides: dict | None = None, unsigned: bool = False,
                       app_key: str | None = None) -> requests.Response:
        """Test hook: send a crafted lifecycle call for the workspace's (latest) installation; no state change.

        `secret` signs the JWT (default: what Bitbucket would use); `unsigned` sends no Authorization;
        `payload_overrides` are merged into the body (a value of None removes the key).
        """
        ws = self.workspace(workspace)
        with self._lock:
            recs = [i for i in self._installs.values()
                    if i.workspace_uuid == ws.uuid and (app_key is None or i.app_key == app_key)]
        if not recs:
            raise NotFound(f"no installation (past or present) in {workspace!r}")
        inst = recs[-1]
        payload = self._lifecycle_payload(event, inst, ws)
        for key, value in (payload_overrides or {}).items():
            if value is None:
                payload.pop(key, None)
            else:
                payload[key] = value
        sign_with = None if unsigned else (inst.shared_secret if secret is _UNSET else secret)
        url = lifecycle_url(inst, event) or lifecycle_url(inst, "installed")
        return post_lifecycle(self.http, inst, url, payload, sign_with)

    def _lifecycle_payload(self, event: str, inst: Installation, ws: Workspace) -> dict:
        public_key = base64.b64encode(uuid.uuid5(uuid.NAMESPACE_URL, inst.client_key).bytes * 8).decode()
        return lifecycle_payload(event, inst, ws, self.renderer, public_key=public_key, web_url=self.web_url,
                                 api_url=self.api_url)

    # --- tokens -----------------------------------------------------------------------------
    def issue_access_token(self, workspace: str, *, scopes: list[str] | None = None,
                           repository: str | None = None) -> str:
        """A valid OAuth access token for the workspace's active installation (as the JWT grant gives)."""
        inst = self.installation(workspace)
        repo_uuid = self.repository(workspace, repository).uuid if repository else None
        return self.tokens.issue(inst, scopes or inst.scopes, repo_uuid).token

    def expire_tokens(self) -> None:
        """Make every access token issued so far invalid (forces a new JWT exchange)."""
        self.tokens.expire_all()

    # --- webhooks ---------------------------------------------------------------------------
    @property
    def deliveries(self) -> list[Delivery]:
        return list(self.deliverer.records)

    def deliver_webhook(self, workspace: str, event_key: str, data: dict, *,
                        attempts: int = 3) -> Delivery | None:
        """Send `event_key` with payload `data` to every subscribed active installation of the workspace.

        Returns the first delivery record (None when nobody subscribes); all are in `deliveries`.
        """
        ws = self.workspace(workspace)
        records = []
        for inst in self._active_installs(ws.uuid):
            for url in webhook_targets(inst, event_key):
                records.append(self.deliverer.send_connect(inst, ws.slug, event_key, data, url, attempts=attempts))
        return records[0] if records else None

    def fire(self, workspace_uuid: str, event_key: str, build: Callable[[], dict | None]) -> Delivery | None:
        """Build and deliver an event now, or queue it when `async_delivery` is on."""
        listeners = [sink for sink in self.listeners if sink.wants(workspace_uuid, event_key)]
        if not self._active_installs(workspace_uuid) and not listeners:
            return None
        data = build()
        if data is None:
            return None

        def send() -> Delivery | None:
            first = self.deliver_webhook(workspace_uuid, event_key, data)
            for sink in listeners:
                sink.deliver(workspace_uuid, event_key, data)
            return first

        if not self.async_delivery:
            return send()
        self._background.put(send)
        return None

    def wait_for_deliveries(self, timeout: float = 30.0) -> None:
        """Block until queued (async) deliveries have been sent."""
        self._background.wait(timeout)
