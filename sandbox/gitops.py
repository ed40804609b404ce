"""The sandbox's git layer: the only module that runs git (bare repos, work clones, ref inspection)."""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable, Mapping

GIT = shutil.which("git") or "git"
HTTP_BACKEND = "/usr/lib/git-core/git-http-backend"
HEADS, TAGS = "refs/heads/", "refs/tags/"
_FS, _RS = "\x1f", "\x1e"


class GitError(RuntimeError):
    """A git command failed."""


def _env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    # Isolate from the user's and the system's git configuration (signing, hooks, aliases...).
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update({"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
                "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"})
    if extra:
        env.update(extra)
    return env


def run(args: list[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None,
        check: bool = True) -> str:
    """Run one git command and return its stdout (the choke point for every git call)."""
    proc = subprocess.run([GIT, *args], cwd=cwd, env=_env(env), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise GitError(f"git {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def popen_http_backend(env: Mapping[str, str]) -> subprocess.Popen:
    """Start `git http-backend` as a CGI process with the given CGI environment."""
    return subprocess.Popen([HTTP_BACKEND], env=_env(env), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


# --- inspection -------------------------------------------------------------------------------

def init_bare(path: Path, default_branch: str = "main") -> None:
    """Create an empty bare repository whose HEAD names `default_branch`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    run(["init", "--bare", "--quiet", f"--initial-branch={default_branch}", str(path)])


def list_refs(path: Path) -> dict[str, str]:
    """refs/heads/* and refs/tags/* with the object each points to, as `git show-ref` prints them."""
    out = run(["for-each-ref", "--format=%(objectname) %(refname)", "refs/heads", "refs/tags"], cwd=path)
    refs = {}
    for line in out.splitlines():
        oid, name = line.split(" ", 1)
        refs[name] = oid
    return refs


def is_ancestor(path: Path, ancestor: str, descendant: str) -> bool:
    proc = subprocess.run([GIT, "merge-base", "--is-ancestor", ancestor, descendant], cwd=path,
                          env=_env(), capture_output=True)
    return proc.returncode == 0


def rev_list(path: Path, include: str, exclude: Iterable[str] = (), max_count: int | None = None) -> list[str]:
    """Commits reachable from `include` but not from any of `exclude`, newest first."""
    args = ["rev-list"]
    if max_count is not None:
        args.append(f"--max-count={max_count}")
    args.append(include)
    args += [f"^{e}" for e in exclude]
    return run(args, cwd=path).split()


@dataclass(frozen=True)
class CommitInfo:
    hash: str
    parents: tuple[str, ...]
    author_name: str
    author_email: str
    date: str  # ISO 8601 strict, author date
    message: str


def commit_infos(path: Path, shas: Iterable[str]) -> dict[str, CommitInfo]:
    """Metadata of the given commits, keyed by hash."""
    shas = list(dict.fromkeys(shas))
    if not shas:
        return {}
    fmt = _FS.join(["%H", "%P", "%an", "%ae", "%aI", "%B"]) + _RS
    out = run(["show", "-s", "--no-walk=unsorted", f"--format={fmt}", *shas], cwd=path)
    infos = {}
    for rec in out.split(_RS):
        rec = rec.lstrip("\n")
        if not rec:
            continue
        h, parents, name, email, date, message = rec.split(_FS)
        infos[h] = CommitInfo(h, tuple(parents.split()), name, email, date, message)
    return infos


@dataclass(frozen=True)
class RefInfo:
    name: str  # full ref name
    oid: str  # what the ref points at (tag object for annotated tags)
    commit: str  # peeled commit
    annotated: bool = False
    tagger_name: str | None = None
    tagger_email: str | None = None
    tag_date: str | None = None
    tag_message: str | None = None


def ref_infos(path: Path, patterns: Iterable[str] = (HEADS.rstrip("/"), TAGS.rstrip("/"))) -> list[RefInfo]:
    """Details of every ref matching `patterns` (annotated tags carry tagger, date and message)."""
    fmt = _FS.join(["%(refname)", "%(objectname)", "%(objecttype)", "%(*objectname)", "%(taggername)",
                    "%(taggeremail:trim)", "%(taggerdate:iso-strict)", "%(contents)"]) + _RS
    out = run(["for-each-ref", f"--format={fmt}", *patterns], cwd=path)
    infos = []
    for rec in out.split(_RS):
        rec = rec.lstrip("\n")
        if not rec:
            continue
        name, oid, otype, peeled, tname, temail, tdate, contents = rec.split(_FS)
        if otype == "tag":
            infos.append(RefInfo(name, oid, peeled, True, tname, temail, tdate, contents))
        else:
            infos.append(RefInfo(name, oid, oid))
    return infos


def object_ref_info(path: Path, name: str, oid: str) -> RefInfo:
    """RefInfo for `name` as if it pointed at `oid` (works for refs that no longer exist)."""
    otype = run(["cat-file", "-t", oid], cwd=path).strip()
    if otype != "tag":
        return RefInfo(name, oid, oid)
    raw = run(["cat-file", "tag", oid], cwd=path)
    header, _, message = raw.partition("\n\n")
    tagger_name = tagger_email = tag_date = None
    for line in header.splitlines():
        if line.startswith("tagger "):
            who, _, when = line[len("tagger "):].rpartition("> ")
            tagger_name, _, tagger_email = who.partition(" <")
            tag_date = _git_date_to_iso(when)
    commit = run(["rev-parse", f"{oid}^{{commit}}"], cwd=path).strip()
    return RefInfo(name, oid, commit, True, tagger_name, tagger_email, tag_date, message)


def _git_date_to_iso(raw: str) -> str:
    epoch, _, tz = raw.strip().partition(" ")
    sign = -1 if tz.startswith("-") else 1
    offset = timedelta(hours=int(tz[1:3] or 0), minutes=int(tz[3:5] or 0)) * sign
    return datetime.fromtimestamp(int(epoch), timezone(offset)).isoformat()


def repo_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def has_object(path: Path, oid: str) -> bool:
    proc = subprocess.run([GIT, "cat-file", "-e", oid], cwd=path, env=_env(), capture_output=True)
    return proc.returncode == 0


# --- writing through a work clone -------------------------------------------------------------

@dataclass(frozen=True)
class Identity:
    name: str
    email: str


class WorkClone:
    """A non-bare clone used to make commits and tags, which are then pushed into the bare repo."""

    def __init__(self, bare: Path, work: Path, default_branch: str = "main") -> None:
        self.bare, self.work, self.default_branch = bare, work, default_branch

    def _git(self, *args: str, env: Mapping[str, str] | None = None) -> str:
        return run(list(args), cwd=self.work, env=env)

    def sync(self) -> None:
        """Create the clone if needed and mirror the bare repo's branches and tags into it."""
        if not (self.work / ".git").exists():
            self.work.parent.mkdir(parents=True, exist_ok=True)
            run(["init", "--quiet", str(self.work)])
            self._git("remote", "add", "origin", str(self.bare))
        self._git("fetch", "--quiet", "--prune", "--force", "origin",
                  "+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*")

    def resolve(self, rev: str) -> str | None:
        proc = subprocess.run([GIT, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd=self.work,
                              env=_env(), capture_output=True, text=True)
        return proc.stdout.strip() if proc.returncode == 0 else None

    def ensure_object(self, oid: str) -> None:
        """Make `oid` available locally even if the bare repo no longer advertises it."""
        if has_object(self.work, oid):
            return
        self._git("fetch", "--quiet", "--upload-pack=git -c uploadpack.allowAnySHA1InWant=true upload-pack",
                  "origin", oid)

    def commit(self, branch: str, message: str, files: Mapping[str, str] | None, parent: str | None,
               author: Identity, when: int, *, orphan: bool = False) -> str:
        """Make one commit on top of `parent` (or nothing when `orphan`) and return its hash."""
        if orphan or parent is None:
            self._git("checkout", "--quiet", "--force", "--orphan", f"sandbox-tmp-{when}")
            self._git("rm", "-r", "-q", "-f", "--cached", "--ignore-unmatch", ".")
            self._git("clean", "-q", "-f", "-d", "-x")
        else:
            self.ensure_object(parent)
            self._git("checkout", "--quiet", "--force", "--detach", parent)
            self._git("clean", "-q", "-f", "-d", "-x")
        if files is None:
            log = self.work / "CHANGES.md"
            previous = log.read_text() if log.exists() else "# Changes\n"
            files = {"CHANGES.md": f"{previous}- {message.splitlines()[0] if message else ''}\n"}
        for rel, content in files.items():
            target = self.work / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
        self._git("add", "-A")
        stamp = f"@{when} +0000"
        env = {"GIT_AUTHOR_NAME": author.name, "GIT_AUTHOR_EMAIL": author.email, "GIT_AUTHOR_DATE": stamp,
               "GIT_COMMITTER_NAME": author.name, "GIT_COMMITTER_EMAIL": author.email,
               "GIT_COMMITTER_DATE": stamp}
        self._git("commit", "--quiet", "--allow-empty", "--no-verify", "-m", message, env=env)
        return self._git("rev-parse", "HEAD").strip()

    def push(self, src: str, dst: str, *, force: bool = False) -> None:
        """Push `src` (a commit, a local ref or empty for delete) to the bare repo's `dst`."""
        spec = f"{'+' if force else ''}{src}:{dst}"
        self._git("push", "--quiet", "--no-verify", "origin", spec)

    def tag(self, name: str, target: str, *, annotated: bool, message: str | None, tagger: Identity,
            when: int, force: bool = False) -> None:
        self.ensure_object(target)
        args = ["tag"] + (["-f"] if force else [])
        env = None
        if annotated:
            args += ["-a", "-m", message or f"Tag {name}"]
            env = {"GIT_COMMITTER_NAME": tagger.name, "GIT_COMMITTER_EMAIL": tagger.email,
                   "GIT_COMMITTER_DATE": f"@{when} +0000"}
        self._git(*args, name, target, env=env)


def default_branch(path: Path) -> str | None:
    """The branch HEAD names, if that branch exists (None for an empty repository)."""
    head = (path / "HEAD").read_text().strip()
    if not head.startswith("ref: refs/heads/"):
        return None
    name = head[len("ref: refs/heads/"):]
    if (path / "refs" / "heads" / name).is_file():
        return name
    packed = path / "packed-refs"
    if packed.is_file() and any(line.endswith(f" refs/heads/{name}") for line in packed.read_text().splitlines()):
        return name
    return None


def set_default_branch(path: Path, name: str) -> None:
    """Point HEAD at `refs/heads/<name>` (what Bitbucket shows as the repository's main branch)."""
    run(["symbolic-ref", "HEAD", f"{HEADS}{name}"], cwd=path)


def resolve(path: Path, rev: str) -> str | None:
    """The commit `rev` names in the repository at `path`, or None."""
    if rev.startswith("-"):
        return None
    proc = subprocess.run([GIT, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"],
                          cwd=path, env=_env(), capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None
