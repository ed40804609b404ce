"""`python -m workers.send run_job|sync_repository|process_event ID`: enqueue one task by name.

The `strongroom` command runs this as a subprocess (the library never imports the fronts), so work it
records starts at once instead of waiting for the janitor to find it.
"""
from __future__ import annotations

import sys

from strongroom.config import Settings

from .enqueue import CeleryDispatcher

ACTIONS = ("run_job", "sync_repository", "process_event")


def main(argv: list[str]) -> int:
    """Send one task; exit 2 on bad usage, 1 when the broker refused it."""
    if len(argv) != 2 or argv[0] not in ACTIONS:
        print(f"usage: python -m workers.send {'|'.join(ACTIONS)} ID", file=sys.stderr)
        return 2
    try:
        getattr(CeleryDispatcher(Settings.from_env()), argv[0])(argv[1])
    except Exception as exc:  # the caller falls back to the janitor, which re-dispatches recorded work
        print(f"could not enqueue {argv[0]} {argv[1]}: {exc.__class__.__name__}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
