"""What a benchmark ran on: CPU, cores, memory, git, Python, database, broker and web server."""
from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _git_version() -> str:
    out = subprocess.run(["git", "--version"], capture_output=True, text=True, check=False).stdout
    return out.strip().removeprefix("git version ") or "unknown"


def _filesystem(path: Path) -> str:
    out = subprocess.run(["df", "--output=fstype", str(path)], capture_output=True, text=True, check=False).stdout
    lines = out.split()
    return lines[-1] if len(lines) > 1 else "unknown"


def load_average() -> list[float] | None:
    """The 1/5/15-minute load averages (other work on the machine makes timings noisy)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def describe(*, database_url: str, redis_url: str | None, server: str, data_dir: Path | None = None) -> dict:
    """A JSON-ready description of this machine and of the services a benchmark used."""
    database = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    info = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "git": _git_version(),
        "python": platform.python_version(),
        "database": database,
        "broker": "redis" if redis_url else "filesystem (embedded)",
        "locks": "redis" if redis_url else "flock (embedded)",
        "web_server": server,
        "load_average_at_start": load_average(),
    }
    if data_dir is not None:
        info["data_dir_filesystem"] = _filesystem(data_dir)
    return info


def one_line(info: dict) -> str:
    """The machine description as one printable line."""
    return (f"{info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB RAM, {info['os']}; git {info['git']}, "
            f"Python {info['python']}; database {info['database']}, broker {info['broker']}; "
            f"web {info['web_server']}")
