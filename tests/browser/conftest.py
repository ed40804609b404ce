"""Headless Debian chromium driven by Playwright, against the real integration stack."""
from __future__ import annotations

import shutil
import os
from pathlib import Path

import pytest

from harness import ROOT, HostSigner

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
SCREENSHOTS = ROOT / "docs" / "screenshots"


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium chromium-driver)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright (Python) is not installed in this environment")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh page that records script errors and CSP violations; the test fails on any."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    problems: list[str] = []
    tab.on("pageerror", lambda exc: problems.append(f"script error: {exc}"))
    tab.on("console", lambda msg: problems.append(f"console: {msg.text}")
           if msg.type == "error" and "Content Security Policy" in msg.text else None)
    tab.set_default_timeout(60_000)
    # Assertions wait as long as actions may: on a loaded CI machine one API round trip of the page
    # can take seconds (SQLite writers queue behind the worker's), which is slow, not wrong.
    from playwright.sync_api import expect

    expect.set_options(timeout=30_000)
    yield tab
    context.close()
    assert not problems, problems


def _signed_page_url(base_url: str, ws, path: str, query: str = "") -> str:
    token = HostSigner(ws.client_key, ws.shared_secret).token("GET", path + (f"?{query}" if query else ""))
    return f"{base_url}{path}?{query + '&' if query else ''}jwt={token}"


@pytest.fixture
def signed_page_url():
    """A page URL as Bitbucket builds it: HS256, iss = aud = clientKey, qsh over path and query."""
    return _signed_page_url


@pytest.fixture
def screenshots(tmp_path) -> Path:
    """Where pictures of the main views go: docs/screenshots when STRONGROOM_SCREENSHOTS=1 (to refresh the
    README's pictures), else a temp dir, so an ordinary test run never rewrites tracked files."""
    if os.environ.get("STRONGROOM_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return SCREENSHOTS
    return tmp_path
