"""Repository helpers of `Sandbox`: create, commit, force-push, branches, tags, rename, delete, transfer.

Every change is made in a work clone and pushed into the bare repository, then announced with the
webhook Bitbucket would send, computed from the actual refs before and after.
"""
from __future__ import annotations

import re
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from . import gitops
from .gitops import HEADS, TAGS, Identity, WorkClone
from .model import Delivery, Repository, Workspace, new_uuid, utc_now_iso

if TYPE_CHECKING:  # pragma: no cover
    from .core import Sandbox

_REPO_SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,61}$")
FORK_POLICIES = ("allow_forks", "no_public_forks", "no_forks")


class RepoOpsMixin:
    """Git-backed repository operations; mixed into `Sandbox`."""

    _clock = 0
    _counter = 0

    # --- plumbing -------------------------------------------------------------------------
    def _tick(self) -> int:
        """A commit timestamp that never goes backwards."""
        self._clock = max(int(time.time()), self._clock)
        return self._clock

    def _next_message(self, what: str) -> str:
        self._counter += 1
        return f"{what} #{self._counter}"

    def _work_clone(self: "Sandbox", repo: Repository) -> WorkClone:
        return WorkClone(repo.path, self.root / "work" / repo.uuid.strip("{}"))

    def _identity(self: "Sandbox", ws: Workspace) -> Identity:
        return Identity(ws.actor.display_name, ws.actor.email)

    def _change(self: "Sandbox", workspace: str, repo: str, deliver: bool,
                fn: Callable[[Workspace, Repository, WorkClone], Any]) -> Any:
        """Run `fn` against a synced work clone, then announce the resulting ref changes."""
        r = self.repository(workspace, repo)
        ws = self.workspace(r.workspace_uuid)
        with r.lock:
            work = self._work_clone(r)
            work.sync()
            result = fn(ws, r, work)
        self.notify_push(ws.uuid, r.uuid, deliver=deliver)
        return result

    def notify_push(self: "Sandbox", workspace: str, repo: str, *, deliver: bool = True,
                    order: Sequence[str] = ()) -> Delivery | None:
        """Fire repo:push for every ref change since the last notification (e.g. after a plain `git push`).

        A repository without branches takes the first branch pushed to it as its main branch (`order`: the
        refs of the push in the order the client sent them, when known).
        """
        r = self.repository(workspace, repo)
        ws = self.workspace(r.workspace_uuid)
        with r.lock:
            old, new = r.notified_refs, gitops.list_refs(r.path)
            r.notified_refs = new
            self._adopt_main_branch(r, old, new, order)
        if not deliver or old == new:
            return None
        r.updated_on = utc_now_iso()
        return self.fire(ws.uuid, "repo:push", lambda: self.events.push(ws, r, ws.actor, old, new))

    @staticmethod
    def _adopt_main_branch(r: Repository, old: dict[str, str], new: dict[str, str], order: Sequence[str]) -> None:
        # Bitbucket makes the first branch pushed to an empty repository its main branch, and its REST API
        # cannot change it afterwards (BCLOUD-20340). Several branches in that first push: the first one the
        # client sent; not known (a helper's push): HEAD's default `main` if pushed, else the first by name.
        if any(ref.startswith(HEADS) for ref in old):
            return
        heads = [ref for ref in new if ref.startswith(HEADS)]
        if not heads:
            return
        sent = [ref for ref in order if ref in heads]
        current = gitops.default_branch(r.path)
        chosen = sent[0][len(HEADS):] if sent else current or sorted(heads)[0][len(HEADS):]
        if chosen != current:
            gitops.set_default_branch(r.path, chosen)

    # --- repositories ---------------------------------------------------------------------
    def create_repository(self: "Sandbox", workspace: str, slug: str, *, commits: int = 1, deliver: bool = True,
                          is_private: bool = True, project: str | None = None, description: str = "",
                          name: str | None = None, language: str = "",
                          fork_policy: str = "no_public_forks") -> dict:
        """A bare repository with `commits` commits on main; fires repo:created (not repo:push)."""
        ws = self.workspace(workspace)
        slug = slug.lower()
        if not _REPO_SLUG_RE.match(slug):
            raise ValueError(f"invalid repository slug {slug!r}")
        if project is not None and project not in ws.projects:
            raise ValueError(f"no project {project!r} in {ws.slug}")
        if fork_policy not in FORK_POLICIES:
            raise ValueError(f"fork_policy must be one of {', '.join(FORK_POLICIES)}")
        with self._lock:
            if self.find_repository(ws, slug) is not None:
                raise ValueError(f"repository {ws.slug}/{slug} exists")
            uid = new_uuid()
            path = self.root / "repositories" / ws.slug / f"{slug}.git"
            if path.exists():
                path = path.with_name(f"{slug}-{uid[1:9]}.git")
            r = Repository(uuid=uid, workspace_uuid=ws.uuid, slug=slug, name=name or slug, path=path,
                           project_key=project or ws.default_project().key, description=description,
                           is_private=is_private, language=language, fork_policy=fork_policy)
            gitops.init_bare(path)
            self._repos[r.uuid] = r
        if commits > 0:
            with r.lock:
                work = self._work_clone(r)
                work.sync()
                sha = None
                for i in range(commits):
                    sha = work.commit("main", "Initial commit" if i == 0 else self._next_message("Change"),
                                      None, sha, self._identity(ws), self._tick())
                work.push(sha, f"{HEADS}main")
        r.notified_refs = gitops.list_refs(r.path)
        if deliver:
            self.fire(ws.uuid, "repo:created", lambda: self.events.repo_created(ws, r, ws.actor))
        return self.renderer.repository(ws, r, mainbranch=gitops.default_branch(r.path)) if self.renderer \
            else {"uuid": r.uuid, "slug": r.slug, "full_name": f"{ws.slug}/{r.slug}", "name": r.name}

    def repo_path(self: "Sandbox", workspace: str, repo: str) -> Path:
        return self.repository(workspace, repo).path

    def refs(self: "Sandbox", workspace: str, repo: str) -> dict[str, str]:
        """refs/heads/* and refs/tags/* -> object id, as `git show-ref` prints them."""
        return gitops.list_refs(self.repository(workspace, repo).path)

    def rename_repository(self: "Sandbox", workspace: str, repo: str, new_slug: str, *,
                          deliver: bool = True) -> dict:
        """Change slug and name (uuid unchanged); fires repo:updated with `changes`."""
        return self.update_repository(workspace, repo, slug=new_slug, deliver=deliver)

    def update_repository(self: "Sandbox", workspace: str, repo: str, *, slug: str | None = None,
                          name: str | None = None, description: str | None = None,
                          is_private: bool | None = None, language: str | None = None,
                          fork_policy: str | None = None, deliver: bool = True) -> dict:
        """Change slug/name/description/privacy/language/fork policy; one repo:updated with every change.
        Returns `changes`."""
        r = self.repository(workspace, repo)
        ws = self.workspace(r.workspace_uuid)
        if fork_policy is not None and fork_policy not in FORK_POLICIES:
            raise ValueError(f"fork_policy must be one of {', '.join(FORK_POLICIES)}")
        with self._lock:
            old = self._repo_fields(ws, r)
            if slug is not None and slug.lower() != r.slug:
                slug = slug.lower()
                if not _REPO_SLUG_RE.match(slug):
                    raise ValueError(f"invalid repository slug {slug!r}")
                if self.find_repository(ws, slug) is not None:
                    raise ValueError(f"repository {ws.slug}/{slug} exists")
                r.slug, r.name = slug, name or slug
            elif name is not None:
                r.name = name
            if description is not None:
                r.description = description
            if is_private is not None:
                r.is_private = bool(is_private)
            if language is not None:
                r.language = language
            if fork_policy is not None:
                r.fork_policy = fork_policy
            new = self._repo_fields(ws, r)
            changes = {k: {"old": old[k], "new": new[k]} for k in old if old[k] != new[k]}
            if changes:
                r.updated_on = utc_now_iso()
        if deliver and changes:
            self.fire(ws.uuid, "repo:updated", lambda: self.events.repo_updated(ws, r, ws.actor, changes))
        return changes

    @staticmethod
    def _repo_fields(ws: Workspace, r: Repository) -> dict:
        return {"name": r.name, "slug": r.slug, "full_name": f"{ws.slug}/{r.slug}",
                "description": r.description, "is_private": r.is_private, "language": r.language,
                "fork_policy": r.fork_policy}

    def delete_repository(self: "Sandbox", workspace: str, repo: str, *, deliver: bool = True) -> None:
        """Remove the repository (REST and git answer 404 at once), then fire repo:deleted."""
        r = self.repository(workspace, repo)
        ws = self.workspace(r.workspace_uuid)
        data = self.events.repo_deleted(ws, r, ws.actor) if self.events else None
        with self._lock:
            del self._repos[r.uuid]
        graveyard = self.root / "deleted" / f"{r.uuid.strip('{}')}.git"
        graveyard.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(r.path), graveyard)
        if deliver and data is not None:
            self.fire(ws.uuid, "repo:deleted", lambda: data)

    def transfer_repository(self: "Sandbox", workspace: str, repo: str, to_workspace: str, *,
                            deliver: bool = True) -> None:
        """Move a repository to another workspace; fires repo:transfer to both workspaces' apps."""
        r = self.repository(workspace, repo)
        old_ws, new_ws = self.workspace(r.workspace_uuid), self.workspace(to_workspace)
        with self._lock:
            if self.find_repository(new_ws, r.slug) is not None:
                raise ValueError(f"repository {new_ws.slug}/{r.slug} exists")
            r.workspace_uuid, r.project_key = new_ws.uuid, new_ws.default_project().key
            r.updated_on = utc_now_iso()
        if deliver:
            for ws in (new_ws, old_ws):
                self.fire(ws.uuid, "repo:transfer",
                          lambda: self.events.repo_transfer(new_ws, r, new_ws.actor, old_ws))

    # --- commits and branches -------------------------------------------------------------
    def commit(self: "Sandbox", workspace: str, repo: str, *, branch: str = "main", message: str | None = None,
               files: dict[str, str] | None = None, parent: str | None = None, deliver: bool = True) -> str:
        """A new commit on `branch` (created if needed; on `parent` when given); returns its sha."""
        def op(ws: Workspace, r: Repository, work: WorkClone) -> str:
            base = parent or work.resolve(f"origin/{branch}") or self._default_tip(r, work)
            sha = work.commit(branch, message or self._next_message(f"Change on {branch}"), files, base,
                              self._identity(ws), self._tick())
            work.push(sha, f"{HEADS}{branch}", force=parent is not None)
            return sha
        return self._change(workspace, repo, deliver, op)

    def force_push(self: "Sandbox", workspace: str, repo: str, *, branch: str = "main", to: str | None = None,
                   deliver: bool = True) -> str:
        """Rewrite `branch` to `to` or to a new commit that does not descend from the old tip."""
        def op(ws: Workspace, r: Repository, work: WorkClone) -> str:
            old = work.resolve(f"origin/{branch}")
            if old is None:
                raise ValueError(f"no branch {branch!r}")
            new = to
            if new is None:
                parents = gitops.commit_infos(work.work, [old])[old].parents
                new = work.commit(branch, self._next_message(f"Rewrite {branch}"),
                                  {f"rewrite-{self._counter}.txt": "rewritten history\n"},
                                  parents[0] if parents else None, self._identity(ws), self._tick())
            work.ensure_object(new)
            work.push(new, f"{HEADS}{branch}", force=True)
            return new
        return self._change(workspace, repo, deliver, op)

    def delete_branch(self: "Sandbox", workspace: str, repo: str, branch: str, *, deliver: bool = True) -> None:
        def op(ws: Workspace, r: Repository, work: WorkClone) -> None:
            if work.resolve(f"origin/{branch}") is None:
                raise ValueError(f"no branch {branch!r}")
            work.push("", f"{HEADS}{branch}")
        self._change(workspace, repo, deliver, op)

    def _default_tip(self, r: Repository, work: WorkClone) -> str | None:
        name = gitops.default_branch(r.path)
        return work.resolve(f"origin/{name}") if name else None

    # --- tags -----------------------------------------------------------------------------
    def create_tag(self: "Sandbox", workspace: str, repo: str, name: str, *, target: str | None = None,
                   annotated: bool = False, message: str | None = None, deliver: bool = True) -> str:
        """Create a tag (lightweight or annotated); returns the ref's object id (the tag object if annotated)."""
        return self._tag(workspace, repo, name, target, annotated, message, deliver, move=False)

    def move_tag(self: "Sandbox", workspace: str, repo: str, name: str, *, target: str | None = None,
                 annotated: bool = False, message: str | None = None, deliver: bool = True) -> str:
        """Point an existing tag elsewhere (a forced tag push); returns the new object id."""
        return self._tag(workspace, repo, name, target, annotated, message, deliver, move=True)

    def delete_tag(self: "Sandbox", workspace: str, repo: str, name: str, *, deliver: bool = True) -> None:
        def op(ws: Workspace, r: Repository, work: WorkClone) -> None:
            if f"{TAGS}{name}" not in gitops.list_refs(r.path):
                raise ValueError(f"no tag {name!r}")
            work.push("", f"{TAGS}{name}")
        self._change(workspace, repo, deliver, op)

    def _tag(self: "Sandbox", workspace: str, repo: str, name: str, target: str | None, annotated: bool,
             message: str | None, deliver: bool, *, move: bool) -> str:
        def op(ws: Workspace, r: Repository, work: WorkClone) -> str:
            exists = f"{TAGS}{name}" in gitops.list_refs(r.path)
            if exists != move:
                raise ValueError(f"tag {name!r} {'does not exist' if move else 'exists'}")
            commit = target or self._default_tip(r, work)
            if commit is None:
                raise ValueError("empty repository: nothing to tag")
            work.tag(name, commit, annotated=annotated, message=message, tagger=self._identity(ws),
                     when=self._tick(), force=True)
            work.push(f"{TAGS}{name}", f"{TAGS}{name}", force=move)
            return gitops.list_refs(r.path)[f"{TAGS}{name}"]
        return self._change(workspace, repo, deliver, op)
