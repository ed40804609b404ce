"""A small client for Strongroom's /api/v1 as the host would sign it, and git credentials for benches."""
from __future__ import annotations

import base64
from dataclasses import dataclass, field
from urllib.parse import quote

import requests
from harness import HostSigner
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry


@dataclass
class BenchWorkspace:
    """A sandbox workspace with Strongroom installed."""

    slug: str
    uuid: str
    client_key: str
    shared_secret: str = field(repr=False)
    api: "Api | None" = field(repr=False, default=None)


class Api:
    """Strongroom's /api/v1 with a host-signed JWT per request, on one keep-alive session."""

    def __init__(self, base_url: str, signer: HostSigner) -> None:
        self.base_url, self.signer = base_url.rstrip("/"), signer
        self.session = requests.Session()
        self.session.trust_env = False
        # gunicorn closes idle keep-alive connections after 2 s; a GET that races that close is retried.
        retry = Retry(total=3, connect=3, read=3, status=0, backoff_factor=0.05, allowed_methods={"GET"})
        self.session.mount("http://", HTTPAdapter(max_retries=retry))

    def request(self, method: str, path: str, params: str = "", json_body=None) -> requests.Response:
        """One signed request (the qsh covers the path exactly as it goes on the wire)."""
        target = quote(path, safe="/-._~") + (f"?{params}" if params else "")
        headers = {"Authorization": f"JWT {self.signer.token(method, target)}"}
        return self.session.request(method, self.base_url + target, json=json_body, headers=headers, timeout=30)

    def get(self, path: str, params: str = "") -> dict:
        """GET and decode JSON; raise on an error status."""
        response = self.request("GET", path, params)
        response.raise_for_status()
        return response.json()

    def repositories(self) -> dict[str, dict]:
        """slug -> repository view (every page)."""
        out, page = {}, 1
        while True:
            body = self.get("/api/v1/repositories", f"page={page}&pagelen=100")
            out.update({r["slug"]: r for r in body["values"]})
            if not body.get("next"):
                return out
            page += 1

    def newest_snapshot(self, repo_uuid: str) -> dict | None:
        """The repository's newest snapshot as the API shows it, or None."""
        values = self.get(f"/api/v1/repositories/{repo_uuid}/snapshots", "pagelen=1")["values"]
        return values[0] if values else None

    def access_token(self) -> str:
        """A fresh clone access token (one day) for this installation."""
        response = self.request("POST", "/api/v1/access-tokens", json_body={"label": "bench", "expires_in_days": 1})
        response.raise_for_status()
        return response.json()["token"]


def basic_auth_env(user: str, password: str) -> dict[str, str]:
    """Git credentials through the environment (never the URL or argv)."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {token}"}
