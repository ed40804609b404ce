"""`python -m sandbox`: run a simulated Bitbucket Cloud, seed a workspace, install an add-on, keep running."""
from __future__ import annotations

import argparse
import random
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from .core import Sandbox
from .install import InstallError

REPO_NAMES = ["website", "api-server", "mobile-app", "infrastructure", "docs", "data-pipeline", "billing",
              "auth-service", "design-system", "analytics"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sandbox",
                                description="A simulated Bitbucket Cloud host for Strongroom tests and demos.")
    p.add_argument("--addon-url", help="the add-on's base URL; its descriptor is read from "
                                       "URL/atlassian-connect.json (omit to run without installing)")
    p.add_argument("--port-web", type=int, default=0, help="web/git/OAuth port (default: any free port)")
    p.add_argument("--port-api", type=int, default=0, help="REST API port (default: any free port)")
    p.add_argument("--root", type=Path, help="where repositories live (default: a temporary directory)")
    p.add_argument("--workspace", default="acme", help="workspace slug to create (default: acme)")
    p.add_argument("--repos", type=int, default=3, help="repositories to create (default: 3)")
    p.add_argument("--app-secret", help="registered-app model: every install's sharedSecret is this secret")
    p.add_argument("--demo-pushes", type=float, metavar="SECONDS",
                   help="commit to a random repository every SECONDS (fires repo:push)")
    p.add_argument("--install-wait", type=float, default=30.0, metavar="SECONDS",
                   help="keep retrying the install this long while the add-on is not reachable (default: 30)")
    return p


def _seed(sb: Sandbox, workspace: str, count: int) -> list[str]:
    sb.create_workspace(workspace, name=f"{workspace.capitalize()} Inc.")
    slugs = [REPO_NAMES[i] if i < len(REPO_NAMES) else f"repo-{i + 1}" for i in range(count)]
    for i, slug in enumerate(slugs):
        sb.create_repository(workspace, slug, commits=3 + i % 3)
        if i == 0:
            sb.commit(workspace, slug, branch="develop", message="Start develop")
            sb.create_tag(workspace, slug, "v1.0.0", annotated=True, message="First release")
    return slugs


def _install(sb: Sandbox, workspace: str, addon_url: str, wait: float) -> dict:
    descriptor = addon_url.rstrip("/") + "/atlassian-connect.json"
    deadline = time.monotonic() + wait
    while True:
        try:
            return sb.install(workspace, descriptor)
        except InstallError as exc:
            if time.monotonic() >= deadline or "could not fetch" not in str(exc):
                raise
            time.sleep(1.0)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    root = args.root or Path(tempfile.mkdtemp(prefix="strongroom-sandbox-"))
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    sb = Sandbox(root, app_secret=args.app_secret, web_port=args.port_web, api_port=args.port_api).start()
    try:
        slugs = _seed(sb, args.workspace, args.repos)
        print(f"web (baseUrl):     {sb.web_url}", flush=True)
        print(f"api (baseApiUrl):  {sb.api_url}", flush=True)
        print(f"root:              {root}", flush=True)
        print(f"workspace:         {args.workspace} {sb.workspace(args.workspace).uuid}", flush=True)
        for slug in slugs:
            print(f"repository:        {args.workspace}/{slug}  {sb.web_url}/{args.workspace}/{slug}.git",
                  flush=True)
        if args.addon_url:
            try:
                install = _install(sb, args.workspace, args.addon_url, args.install_wait)
            except InstallError as exc:
                print(f"install failed:    {exc}", file=sys.stderr, flush=True)
                return 1
            print(f"installed:         client key {install['client_key']}", flush=True)
        print("running; Ctrl-C to stop", flush=True)
        while True:
            if not args.demo_pushes:
                time.sleep(3600)
                continue
            time.sleep(args.demo_pushes)
            slug = random.choice(slugs)
            sha = sb.commit(args.workspace, slug, message=f"Demo change at {time.strftime('%H:%M:%S')}")
            last = sb.deliveries[-1] if sb.deliveries else None
            outcome = f"webhook {last.status}" if last and last.event == "repo:push" else "no webhook"
            print(f"pushed {args.workspace}/{slug} {sha[:12]} ({outcome})", flush=True)
    except KeyboardInterrupt:
        print("stopping", flush=True)
        return 0
    finally:
        sb.stop()
        if args.root is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
