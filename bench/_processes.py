"""Process helpers for the bench stack: gunicorn as a subprocess, parallel start/stop, fast teardown."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable

import requests
from harness import wait_for

ROOT = Path(__file__).resolve().parents[1]
GUNICORN_FLAGS = ("--worker-class", "gthread", "--workers", "2", "--threads", "8", "--timeout", "300")


def in_parallel(calls: list[Callable[[], object]]) -> None:
    """Run the calls on threads (process start-up and warm shutdown take seconds each); re-raise the first error."""
    errors: list[BaseException] = []

    def guarded(call: Callable[[], object]) -> None:
        try:
            call()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(call,)) for call in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def cold_stop(process) -> None:
    """Kill a harness worker/beat process group at once. The stack is thrown away (its directory, its
    database and its Redis keys), so there is nothing to finish, and Celery's warm or cold shutdown
    costs 5-20 s each."""
    proc = process.proc
    if proc is not None and proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    process.stop()  # closes the log


class GunicornServer:
    """A WSGI app under gunicorn with the Procfile's flags, as a subprocess on loopback."""

    def __init__(self, app_spec: str, port: int, env: dict[str, str], log_path: Path,
                 flags: tuple[str, ...] = GUNICORN_FLAGS) -> None:
        self.app_spec, self.port, self.env, self.log_path, self.flags = app_spec, port, env, log_path, flags
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, probe: str = "/atlassian-connect.json", timeout: float = 60.0) -> "GunicornServer":
        """Start gunicorn and wait until ``probe`` answers."""
        cmd = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}", *self.flags, self.app_spec]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.log_path.read_text()[-3000:]}")
            try:
                return requests.get(self.url + probe, timeout=2).status_code < 500
            except requests.RequestException:
                return False

        wait_for(ready, timeout, 0.1, message=f"gunicorn serving {self.app_spec}")
        return self

    def stop(self) -> None:
        """SIGTERM (gunicorn's graceful stop), SIGKILL after 20 s."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if getattr(self, "_log", None):
            self._log.close()
