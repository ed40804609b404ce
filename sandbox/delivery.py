"""Webhook delivery as Bitbucket does it (bitbucket-platform.md §5.1, §5.2).

10 s timeout, immediate retries on 5xx up to 3 attempts in total, payloads over 256 KB dropped,
the same X-Request-UUID on every attempt. The Connect format is implemented here; repository and
workspace hooks (raw payload + X-Hub-Signature) will reuse `_post_with_retries`.
"""
from __future__ import annotations

import json
import queue
import secrets
import threading
import time
import uuid
from email.utils import formatdate
from typing import Callable
from urllib.parse import urlsplit

import requests

from .auth import event_scope, expand_scopes, sign_host_jwt
from .model import Delivery, Installation

MAX_BODY_BYTES = 256 * 1024
TIMEOUT_SECONDS = 10
USER_AGENT = "Bitbucket-Webhooks/2.0"
_HOOK_NS = uuid.UUID("5b0f7a4e-2d55-4c36-9d8e-6f0b1f3c2a11")


def app_url(base_url: str, url: str) -> str:
    """Resolve a descriptor URL (absolute, or relative to the app's baseUrl)."""
    if urlsplit(url).scheme:
        return url
    return base_url.rstrip("/") + "/" + url.lstrip("/")


def app_relative(base_url: str, full_url: str) -> str:
    """Path (+ query) of `full_url` relative to the app baseUrl's path: what the qsh is computed over."""
    base_path = urlsplit(base_url).path.rstrip("/")
    parts = urlsplit(full_url)
    path = parts.path
    if base_path and (path == base_path or path.startswith(base_path + "/")):
        path = path[len(base_path):]
    path = path or "/"
    return path + (f"?{parts.query}" if parts.query else "")


def webhook_targets(inst: Installation, event: str) -> list[str]:
    """Distinct URLs of the installation's webhook modules that receive `event` (scope-filtered)."""
    if event_scope(event) not in expand_scopes(inst.scopes):
        return []
    urls = []
    for hook in (inst.descriptor.get("modules") or {}).get("webhooks") or []:
        if hook.get("event") in (event, "*"):
            url = app_url(inst.base_url, hook["url"])
            if url not in urls:
                urls.append(url)
    return urls


class Deliverer:
    """Sends webhooks and keeps a record of every delivery."""

    def __init__(self) -> None:
        self.session = requests.Session()
        self.session.trust_env = False  # never route loopback traffic through an environment proxy
        self.records: list[Delivery] = []
        self._lock = threading.Lock()

    def send_connect(self, inst: Installation, workspace_slug: str, event: str, data: dict, url: str, *,
                     attempts: int = 3) -> Delivery:
        """Deliver one event to one Connect webhook URL in the wrapped `{"event", "data"}` format."""
        body = json.dumps({"event": event, "data": data}, separators=(",", ":")).encode()
        record = Delivery(event=event, url=url, workspace=workspace_slug, client_key=inst.client_key,
                          request_uuid=str(uuid.uuid4()),
                          hook_uuid=str(uuid.uuid5(_HOOK_NS, f"{inst.client_key}|{event}")), body=body)
        relative = app_relative(inst.base_url, url)

        def headers(attempt: int) -> dict[str, str]:
            token = sign_host_jwt(inst.client_key, inst.shared_secret, "POST", relative)
            trace = secrets.token_hex(8)
            return {"Content-Type": "application/json", "User-Agent": USER_AGENT, "Accept": "*/*",
                    "Accept-Encoding": "gzip", "X-Event-Key": event, "X-Event-Time": formatdate(usegmt=True),
                    "X-Hook-UUID": record.hook_uuid, "X-Request-UUID": record.request_uuid,
                    "X-Attempt-Number": str(attempt), "X-B3-Traceid": trace, "X-B3-Spanid": trace,
                    "X-B3-Sampled": "1", "Authorization": f"JWT {token}"}

        return self._post_with_retries(record, headers, attempts)

    def _post_with_retries(self, record: Delivery, headers: Callable[[int], dict[str, str]],
                           attempts: int) -> Delivery:
        with self._lock:
            self.records.append(record)
        if len(record.body) > MAX_BODY_BYTES:
            record.dropped = f"payload of {len(record.body)} bytes exceeds the 256 KB limit"
            return record
        for attempt in range(1, attempts + 1):
            record.headers = headers(attempt)
            try:
                resp = self.session.post(record.url, data=record.body, headers=record.headers,
                                         timeout=TIMEOUT_SECONDS, allow_redirects=False)
            except requests.Timeout:
                record.status_codes.append(None)
                record.errors.append("TIMEOUT")
                break  # Bitbucket only promises retries on 5xx
            except requests.RequestException as exc:
                record.status_codes.append(None)
                record.errors.append(f"NETWORK ERROR: {exc.__class__.__name__}")
                break
            record.status_codes.append(resp.status_code)
            record.errors.append(None)
            if 200 <= resp.status_code < 300:
                record.delivered = True
                break
            if resp.status_code < 500:
                break
        return record


class BackgroundQueue:
    """Runs jobs one at a time, in submission order, on a daemon thread (async webhook delivery)."""

    def __init__(self) -> None:
        self._queue: queue.Queue | None = None
        self._lock = threading.Lock()

    def put(self, job: Callable[[], object]) -> None:
        with self._lock:
            if self._queue is None:
                self._queue = queue.Queue()
                threading.Thread(target=self._loop, name="sandbox-delivery", daemon=True).start()
        self._queue.put(job)

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            try:
                job()
            except Exception:  # a failed delivery must not stop later ones
                pass
            finally:
                self._queue.task_done()

    def wait(self, timeout: float = 30.0) -> None:
        """Block until every queued job has run (or `timeout` passed)."""
        deadline = time.monotonic() + timeout
        while self._queue is not None and self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)
