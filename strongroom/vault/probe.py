"""Probing a remote without a mirror: proves that a credential can read a repository over git."""
from __future__ import annotations

from .git import GitCredentials, run_git
from .mirror import LIVE_PREFIXES, check_remote_url

# A probe is interactive (an operator waits on it): give up on a stalled connection quickly.
_PROBE_CONFIG = ("-c", "http.lowSpeedLimit=1000", "-c", "http.lowSpeedTime=30")


def probe_remote(url: str, credentials: GitCredentials, *, timeout: float = 60.0) -> dict[str, str]:
    """``git ls-remote`` of heads and tags with ``credentials``; raises the classified git error."""
    args = [*_PROBE_CONFIG, "ls-remote", "--refs", "--heads", "--tags", "--end-of-options", check_remote_url(url)]
    out = run_git(args, env=credentials.env(), timeout=timeout).text
    pairs = (line.split("\t", 1) for line in out.splitlines() if "\t" in line)
    return {name: oid for oid, name in pairs if name.startswith(LIVE_PREFIXES)}
