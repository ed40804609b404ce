"""Fast synthetic histories: `git fast-import` writes N commits straight into a bare repository."""
from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

_BATCH = 4000


def git_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """An environment isolated from the user's and the system's git configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update({"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_TERMINAL_PROMPT": "0",
                "LC_ALL": "C"})
    env.update(extra or {})
    return env


def _blob(i: int, blob_bytes: int) -> bytes:
    """Content for commit ``i``: a short line, or ``blob_bytes`` of incompressible data."""
    if blob_bytes <= 0:
        return f"line {i}\n".encode()
    seed, out = f"blob-{i}".encode(), bytearray()
    while len(out) < blob_bytes:
        seed = hashlib.sha256(seed).digest()
        out += seed
    return bytes(out[:blob_bytes])


def generate_history(repo: Path, commits: int, *, branch: str = "main", files: int = 100,
                     blob_bytes: int = 0, start_time: int = 1_600_000_000) -> None:
    """Append ``commits`` linear commits to ``branch`` of the bare repository ``repo``.

    Each commit rewrites one of ``files`` files spread over ten directories, so trees stay small and
    generation stays fast (100k commits take a few seconds).
    """
    proc = subprocess.Popen(["git", "fast-import", "--quiet", "--done"], cwd=repo, env=git_env(),
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    chunks: list[bytes] = []
    for i in range(1, commits + 1):
        content, message = _blob(i, blob_bytes), f"Commit {i}\n".encode()
        chunks.append(b"commit refs/heads/%s\nmark :%d\ncommitter Bench <bench@example.com> %d +0000\n"
                      b"data %d\n%s" % (branch.encode(), i, start_time + 60 * i, len(message), message))
        if i > 1:
            chunks.append(b"from :%d\n" % (i - 1))
        n = i % files
        chunks.append(b"M 644 inline d%d/f%04d.txt\ndata %d\n%s\n" % (n % 10, n, len(content), content))
        if len(chunks) >= _BATCH:
            proc.stdin.write(b"".join(chunks))
            chunks = []
    chunks.append(b"done\n")
    proc.stdin.write(b"".join(chunks))
    proc.stdin.close()
    err = proc.stderr.read()
    if proc.wait() != 0:
        raise RuntimeError(f"git fast-import failed: {err.decode(errors='replace')[-2000:]}")


def git(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run a git command (isolated configuration) and return stdout; raise on failure."""
    proc = subprocess.run(["git", *args], cwd=cwd, env=git_env(env), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"git {args[0]} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return proc.stdout
