"""Webhook event payloads (the `data` of a Connect delivery), built from real repository state (§5.4, §5.5)."""
from __future__ import annotations

from typing import Mapping

from . import gitops
from .gitops import HEADS, TAGS, RefInfo
from .model import Repository, User, Workspace
from .render import Renderer

MAX_PUSH_COMMITS = 5  # commits embedded per change; `truncated` is true when there were more


class EventBuilder:
    """Builds payload `data` objects for repo:* events."""

    def __init__(self, renderer: Renderer) -> None:
        self.r = renderer

    def _base(self, ws: Workspace, repo: Repository, actor: User) -> dict:
        return {"actor": self.r.user(actor), "repository": self.r.repository(ws, repo, full=False)}

    def repo_created(self, ws: Workspace, repo: Repository, actor: User) -> dict:
        return self._base(ws, repo, actor)

    def repo_deleted(self, ws: Workspace, repo: Repository, actor: User) -> dict:
        return self._base(ws, repo, actor)

    def repo_updated(self, ws: Workspace, repo: Repository, actor: User, changes: dict) -> dict:
        return dict(self._base(ws, repo, actor), changes=changes)

    def repo_transfer(self, ws: Workspace, repo: Repository, actor: User, previous: Workspace) -> dict:
        # The key for the previous owner is not verified against a capture (§5.5); both forms are sent.
        return dict(self._base(ws, repo, actor), previous_owner=self.r.team(previous),
                    previous_workspace=self.r.workspace(previous, full=False))

    def push(self, ws: Workspace, repo: Repository, actor: User, old_refs: Mapping[str, str],
             new_refs: Mapping[str, str]) -> dict | None:
        """repo:push data for every ref that differs between `old_refs` and `new_refs` (None if none)."""
        names = sorted(n for n in set(old_refs) | set(new_refs)
                       if old_refs.get(n) != new_refs.get(n) and n.startswith((HEADS, TAGS)))
        changes = []
        for name in names:
            try:
                changes.append(self._change(ws, repo, name, old_refs.get(name), new_refs.get(name)))
            except gitops.GitError:
                continue  # e.g. a tag of a tree: nothing Bitbucket would describe as a ref change
        if not changes:
            return None
        return dict(push={"changes": changes}, **self._base(ws, repo, actor))

    def _change(self, ws: Workspace, repo: Repository, name: str, old_oid: str | None,
                new_oid: str | None) -> dict:
        path = repo.path
        old = gitops.object_ref_info(path, name, old_oid) if old_oid else None
        new = gitops.object_ref_info(path, name, new_oid) if new_oid else None
        is_branch = name.startswith(HEADS)
        embedded: list[str] = []
        truncated = False
        if is_branch and new is not None:
            shas = gitops.rev_list(path, new.commit, [old.commit] if old else [], MAX_PUSH_COMMITS + 1)
            truncated, embedded = len(shas) > MAX_PUSH_COMMITS, shas[:MAX_PUSH_COMMITS]
        infos = gitops.commit_infos(path, [i.commit for i in (old, new) if i] + embedded)
        change = {
            "old": self._ref(ws, repo, old, infos), "new": self._ref(ws, repo, new, infos),
            "created": old is None, "closed": new is None,
            # forced: the old tip is not contained in the new one (a rewrite, not a fast-forward)
            "forced": bool(old and new and not gitops.is_ancestor(path, old.commit, new.commit)),
            "truncated": truncated}
        links = self._links(ws, repo, name, old, new)
        if links:
            change["links"] = links
        if is_branch and new is not None:
            change["commits"] = [self.r.commit(ws, repo, infos[s], full_links=True) for s in embedded]
        return change

    def _ref(self, ws: Workspace, repo: Repository, info: RefInfo | None, infos: dict) -> dict | None:
        return self.r.ref(ws, repo, info, infos[info.commit]) if info else None

    def _links(self, ws: Workspace, repo: Repository, name: str, old: RefInfo | None,
               new: RefInfo | None) -> dict:
        api, web = self.r.repo_api(ws, repo), self.r.repo_web(ws, repo)
        if new is None:
            return {}
        if old is None:
            links = {"commits": {"href": f"{api}/commits?include={new.commit}"}}
            if name.startswith(HEADS):
                links["html"] = {"href": f"{web}/branch/{name[len(HEADS):]}"}
            return links
        return {"commits": {"href": f"{api}/commits?include={new.commit}&exclude={old.commit}"},
                "diff": {"href": f"{api}/diff/{new.commit}..{old.commit}"},
                "html": {"href": f"{web}/branches/compare/{new.commit}..{old.commit}"}}
