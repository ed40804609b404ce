"""Counting the git requests Strongroom makes to the host, at the host (nothing in Strongroom changes)."""
from __future__ import annotations

import gzip
import io
import threading
from collections import Counter
from typing import Callable


class GitRequestCounter:
    """WSGI middleware on the sandbox's git endpoint: counts git requests per repository, as the host
    would charge them. A fetch (or ls-remote) starts with one GET of info/refs; a protocol v2
    `command=fetch` POST is a pack negotiation (a fetch that wanted objects)."""

    def __init__(self, app: Callable) -> None:
        self.app = app
        self.sessions: Counter[str] = Counter()
        self.fetch_commands: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, environ: dict, start_response: Callable):
        path = environ.get("PATH_INFO", "")
        if path.endswith("/info/refs") and "service=git-upload-pack" in environ.get("QUERY_STRING", ""):
            with self._lock:
                self.sessions[path.rsplit("/info/refs", 1)[0]] += 1
        elif path.endswith("/git-upload-pack") and environ.get("REQUEST_METHOD") == "POST":
            if _is_fetch_command(environ):
                with self._lock:
                    self.fetch_commands[path.rsplit("/git-upload-pack", 1)[0]] += 1
        return self.app(environ, start_response)

    def snapshot(self) -> tuple[Counter, Counter]:
        """Copies of (sessions, fetch commands) per repository path."""
        with self._lock:
            return Counter(self.sessions), Counter(self.fetch_commands)


def _is_fetch_command(environ: dict) -> bool:
    """Peek at an upload-pack POST (then put the body back): is it a pack negotiation?"""
    length = environ.get("CONTENT_LENGTH")
    if length:
        body = environ["wsgi.input"].read(int(length))
    elif environ.get("wsgi.input_terminated"):  # chunked: git sends bodies over http.postBuffer so
        body = environ["wsgi.input"].read()
    else:
        return False
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    if environ.get("HTTP_CONTENT_ENCODING") == "gzip":  # git gzips request bodies over 1 KiB
        body = gzip.decompress(body)
    return b"command=fetch" in body[:64] or b"want " in body[:64]
