"""JSON shapes of Bitbucket objects (REST 2.0 and webhook payloads), with absolute sandbox links.

Shapes follow the captured payloads in bitbucket-platform.md §2.1, §5.4 and the OpenAPI objects of §6.
"""
from __future__ import annotations

import html
from urllib.parse import quote

from .gitops import CommitInfo, RefInfo
from .model import Project, Repository, User, Workspace

MERGE_STRATEGIES = ["merge_commit", "squash", "fast_forward"]


def _href(url: str) -> dict:
    return {"href": url}


def enc(uuid: str) -> str:
    """A `{uuid}` as it appears in URLs (`%7B…%7D`)."""
    return quote(uuid, safe="")


class Renderer:
    """Builds JSON objects whose links point at one running sandbox."""

    def __init__(self, web_url: str, api_url: str) -> None:
        self.web = web_url.rstrip("/")
        self.api = api_url.rstrip("/") + "/2.0"

    # --- accounts ---------------------------------------------------------------------------
    def user(self, u: User) -> dict:
        return {"type": "user", "display_name": u.display_name, "uuid": u.uuid, "account_id": u.account_id,
                "nickname": u.nickname,
                "links": {"self": _href(f"{self.api}/users/{enc(u.uuid)}"),
                          "html": _href(f"{self.web}/{enc(u.uuid)}/"),
                          "avatar": _href(f"{self.web}/account/{u.nickname}/avatar/")}}

    def team(self, ws: Workspace) -> dict:
        """The workspace as an account (`owner`, lifecycle `principal`)."""
        return {"type": "team", "username": ws.slug, "display_name": ws.name, "uuid": ws.uuid,
                "links": {"self": _href(f"{self.api}/teams/{enc(ws.uuid)}"),
                          "html": _href(f"{self.web}/{enc(ws.uuid)}/"),
                          "avatar": _href(f"{self.web}/account/{ws.slug}/avatar/")}}

    def workspace(self, ws: Workspace, *, full: bool = True) -> dict:
        base = f"{self.api}/workspaces/{ws.slug}"
        links = {"self": _href(base), "html": _href(f"{self.web}/{ws.slug}/"),
                 "avatar": _href(f"{self.web}/workspaces/{ws.slug}/avatar/")}
        obj = {"type": "workspace", "uuid": ws.uuid, "slug": ws.slug, "name": ws.name, "links": links}
        if full:
            links.update({"members": _href(f"{base}/members"), "owners": _href(f"{base}/members?q=permission%3D%22owner%22"),
                          "projects": _href(f"{base}/projects"), "hooks": _href(f"{base}/hooks"),
                          "repositories": _href(f"{self.api}/repositories/{ws.slug}"),
                          "snippets": _href(f"{self.api}/snippets/{ws.slug}")})
            obj.update({"is_private": True, "is_privacy_enforced": False, "forking_mode": "allow_forks",
                        "created_on": ws.created_on, "updated_on": ws.updated_on})
        return obj

    def project(self, ws: Workspace, p: Project, *, full: bool = False) -> dict:
        obj = {"type": "project", "key": p.key, "uuid": p.uuid, "name": p.name,
               "links": {"self": _href(f"{self.api}/workspaces/{ws.slug}/projects/{p.key}"),
                         "html": _href(f"{self.web}/{ws.slug}/workspace/projects/{p.key}"),
                         "avatar": _href(f"{self.web}/account/user/{ws.slug}/projects/{p.key}/avatar/32")}}
        if full:
            obj.update({"description": None, "is_private": True, "has_publicly_visible_repos": False,
                        "created_on": p.created_on, "updated_on": p.created_on,
                        "owner": self.team(ws), "workspace": self.workspace(ws, full=False)})
        return obj

    # --- repositories -----------------------------------------------------------------------
    def repo_api(self, ws: Workspace, r: Repository) -> str:
        return f"{self.api}/repositories/{ws.slug}/{r.slug}"

    def repo_web(self, ws: Workspace, r: Repository) -> str:
        return f"{self.web}/{ws.slug}/{r.slug}"

    def repository(self, ws: Workspace, r: Repository, *, full: bool = True, mainbranch: str | None = "main",
                   size: int | None = None) -> dict:
        api, web = self.repo_api(ws, r), self.repo_web(ws, r)
        host = self.web.split("://", 1)[-1].split(":")[0]
        links = {"self": _href(api), "html": _href(web),
                 "avatar": _href(f"{self.web}/ravatar/{enc(r.uuid)}?ts=default")}
        obj = {"type": "repository", "uuid": r.uuid, "full_name": f"{ws.slug}/{r.slug}", "name": r.name,
               "scm": "git", "is_private": r.is_private, "website": None, "links": links,
               "owner": self.team(ws), "workspace": self.workspace(ws, full=False),
               "project": self.project(ws, ws.projects[r.project_key])}
        if full:
            links.update({
                "pullrequests": _href(f"{api}/pullrequests"), "commits": _href(f"{api}/commits"),
                "forks": _href(f"{api}/forks"), "watchers": _href(f"{api}/watchers"),
                "branches": _href(f"{api}/refs/branches"), "tags": _href(f"{api}/refs/tags"),
                "downloads": _href(f"{api}/downloads"), "source": _href(f"{api}/src"),
                "hooks": _href(f"{api}/hooks"),
                "clone": [{"name": "https", "href": f"{web}.git"},
                          {"name": "ssh", "href": f"git@{host}:{ws.slug}/{r.slug}.git"}]})
            obj.update({"slug": r.slug, "description": r.description, "size": size or 0, "language": r.language,
                        "has_issues": False, "has_wiki": False, "fork_policy": r.fork_policy,
                        "mainbranch": {"type": "branch", "name": mainbranch} if mainbranch else None,
                        "parent": None, "created_on": r.created_on, "updated_on": r.updated_on})
        return obj

    # --- commits and refs -------------------------------------------------------------------
    def commit_stub(self, ws: Workspace, r: Repository, sha: str) -> dict:
        api, web = self.repo_api(ws, r), self.repo_web(ws, r)
        return {"type": "commit", "hash": sha,
                "links": {"self": _href(f"{api}/commit/{sha}"), "html": _href(f"{web}/commits/{sha}")}}

    def author(self, ws: Workspace, name: str, email: str) -> dict:
        obj = {"type": "author", "raw": f"{name} <{email}>"}
        if email == ws.actor.email:
            obj["user"] = self.user(ws.actor)
        return obj

    def commit(self, ws: Workspace, r: Repository, c: CommitInfo, *, full_links: bool = False) -> dict:
        obj = self.commit_stub(ws, r, c.hash)
        if full_links:
            api = self.repo_api(ws, r)
            obj["links"].update({
                "diff": _href(f"{api}/diff/{c.hash}"), "patch": _href(f"{api}/patch/{c.hash}"),
                "approve": _href(f"{api}/commit/{c.hash}/approve"),
                "comments": _href(f"{api}/commit/{c.hash}/comments"),
                "statuses": _href(f"{api}/commit/{c.hash}/statuses")})
        obj.update({
            "date": c.date, "message": c.message, "author": self.author(ws, c.author_name, c.author_email),
            "summary": {"type": "rendered", "raw": c.message, "markup": "markdown",
                        "html": "<p>%s</p>" % html.escape(c.message.strip())},
            "parents": [self.commit_stub(ws, r, p) for p in c.parents],
            "rendered": {}, "properties": {}})
        return obj

    def ref(self, ws: Workspace, r: Repository, info: RefInfo, commit: CommitInfo) -> dict:
        """A branch or tag object (`/refs/*` and push `old`/`new`); a tag's target is the peeled commit."""
        api, web = self.repo_api(ws, r), self.repo_web(ws, r)
        target = self.commit(ws, r, commit)
        if info.name.startswith("refs/tags/"):
            name = info.name[len("refs/tags/"):]
            tagger = self.author(ws, info.tagger_name, info.tagger_email) if info.annotated else None
            return {"type": "tag", "name": name, "target": target,
                    "message": info.tag_message if info.annotated else None,
                    "date": info.tag_date if info.annotated else None, "tagger": tagger,
                    "links": {"self": _href(f"{api}/refs/tags/{quote(name)}"),
                              "commits": _href(f"{api}/commits/{quote(name)}"),
                              "html": _href(f"{web}/commits/tag/{quote(name)}")}}
        name = info.name[len("refs/heads/"):]
        return {"type": "branch", "name": name, "target": target,
                "links": {"self": _href(f"{api}/refs/branches/{quote(name)}"),
                          "commits": _href(f"{api}/commits/{quote(name)}"),
                          "html": _href(f"{web}/branch/{quote(name)}")},
                "merge_strategies": list(MERGE_STRATEGIES), "default_merge_strategy": "merge_commit"}

    def error(self, message: str, detail: str | None = None) -> dict:
        err = {"message": message}
        if detail:
            err["detail"] = detail
        return {"type": "error", "error": err}
