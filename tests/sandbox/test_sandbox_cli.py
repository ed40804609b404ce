"""`python -m sandbox`: seeds a workspace, installs the add-on, pushes on a timer, stops on Ctrl-C."""
from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parents[2]


def _reader(stream, lines: "queue.Queue[str]") -> None:
    for line in stream:
        lines.put(line)
    lines.put("")


def _wait_for(lines: "queue.Queue[str]", needle: str, seen: list[str], timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=deadline - time.monotonic())
        except queue.Empty:
            break
        seen.append(line)
        if needle in line:
            return line
        if line == "":
            break
    raise AssertionError(f"{needle!r} not printed; output so far:\n{''.join(seen)}")


def test_cli_seeds_installs_and_pushes(tmp_path: Path, make_app) -> None:
    app = make_app()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--addon-url", app.base_url, "--root", str(tmp_path / "root"),
         "--workspace", "demo", "--repos", "2", "--demo-pushes", "0.2"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: "queue.Queue[str]" = queue.Queue()
    threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True).start()
    seen: list[str] = []
    try:
        api_line = _wait_for(lines, "api (baseApiUrl):", seen)
        installed = _wait_for(lines, "installed:", seen)
        _wait_for(lines, "running", seen)
        _wait_for(lines, "pushed demo/", seen)
        assert app.client_key and app.client_key in installed
        output = "".join(seen)
        assert "demo/website" in output and "demo/api-server" in output
        assert app.secrets[app.client_key] not in output  # never print the shared secret
        api_url = api_line.split()[-1]
        assert requests.get(f"{api_url}/2.0/repositories/demo", timeout=5).status_code == 401
        assert [w.body["event"] for w in app.webhooks()][:1] == ["repo:push"]
        assert app.lifecycle_calls("installed")[0].error is None

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
