"""The REST 2.0 endpoints (paths relative to `api_url`); authentication happens before any of them runs."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from flask import Flask, Response, g, jsonify, request

from . import gitops
from .query import ApiError
from .repoops import FORK_POLICIES
from .rest import NOT_ACCESSIBLE, require_scope

if TYPE_CHECKING:  # pragma: no cover
    from .rest import Api

R = "/2.0/repositories/<ws>/<repo>"


def _json_body() -> dict:
    if not request.get_data():
        return {}
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "Bad request", "the body must be a JSON object")
    return body


def _settings(body: dict) -> dict:
    """The repository settings a create/update body carries, type-checked (400 otherwise).

    `mainbranch` is accepted and ignored, as on bitbucket.org (BCLOUD-20340): the first branch pushed to
    an empty repository becomes its main branch.
    """
    fields = {}
    for key, kind in (("description", str), ("language", str), ("is_private", bool), ("fork_policy", str)):
        if body.get(key) is not None:
            if not isinstance(body[key], kind):
                raise ApiError(400, f"{key}: a {kind.__name__} is expected")
            fields[key] = body[key]
    if fields.get("language"):
        fields["language"] = fields["language"].lower()
    if "fork_policy" in fields and fields["fork_policy"] not in FORK_POLICIES:
        raise ApiError(400, f"fork_policy: one of {', '.join(FORK_POLICIES)} is expected")
    return fields


def register_views(app: Flask, api: "Api") -> None:
    sb = api.sb

    @app.get("/2.0/workspaces/<ws>")
    def get_workspace(ws: str) -> Response:
        return jsonify(sb.renderer.workspace(api.own_workspace(ws)))

    @app.get("/2.0/workspaces/<ws>/projects")
    def list_projects(ws: str) -> Response:
        require_scope("project")  # the API reference: "OAuth2 scopes: project"
        w = api.own_workspace(ws)
        return api.listing([sb.renderer.project(w, p, full=True) for p in w.projects.values()])

    @app.get("/2.0/workspaces/<ws>/projects/<key>")
    def get_project(ws: str, key: str) -> Response:
        require_scope("project")
        w = api.own_workspace(ws)
        if key not in w.projects:
            raise ApiError(404, f"Project {key} not found")
        return jsonify(sb.renderer.project(w, w.projects[key], full=True))

    @app.get("/2.0/repositories/<ws>")
    def list_repositories(ws: str) -> Response:
        require_scope("repository")
        w = sb.find_workspace(ws)
        if w is None:
            raise ApiError(404, f"No workspace with identifier '{ws}'.")
        return api.listing([api.repository(w, r) for r in sb.repositories(w) if g.principal.can_see(r)])

    @app.get(R)
    def get_repository(ws: str, repo: str) -> Response:
        require_scope("repository")
        return jsonify(api.repository(*api.visible_repo(ws, repo)))

    @app.post(R)
    def create_repository(ws: str, repo: str) -> Response:
        require_scope("repository:admin")
        w = api.own_workspace(ws)
        body = _json_body()
        if body.get("scm", "git") != "git":
            raise ApiError(400, "Only git repositories are supported")
        if sb.find_repository(w, repo) is not None:
            raise ApiError(400, "Repository with this Slug and Owner already exists.")
        fields = _settings(body)
        project = body.get("project")
        key = project.get("key") if isinstance(project, dict) else None
        if project is not None and (not isinstance(key, str) or key not in w.projects):
            raise ApiError(400, f"Project {key} not found")
        try:
            sb.create_repository(w.uuid, repo, commits=0, is_private=fields.get("is_private", True), project=key,
                                 description=fields.get("description", ""), name=body.get("name"),
                                 language=fields.get("language", ""),
                                 fork_policy=fields.get("fork_policy", "no_public_forks"))
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        return jsonify(api.repository(w, sb.find_repository(w, repo)))

    @app.put(R)
    def update_repository(ws: str, repo: str) -> Response:
        require_scope("repository:admin")
        w, r = api.visible_repo(ws, repo)
        body = _json_body()
        slug = None
        if body.get("name") and body["name"] != r.name:
            slug = re.sub(r"[^a-z0-9_.-]+", "-", str(body["name"]).lower()).strip("-")
        fields = _settings(body)
        try:
            sb.update_repository(w.uuid, r.uuid, slug=slug, name=body.get("name"),
                                 description=fields.get("description"), is_private=fields.get("is_private"),
                                 language=fields.get("language"), fork_policy=fields.get("fork_policy"))
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        return jsonify(api.repository(w, r))

    @app.delete(R)
    def delete_repository(ws: str, repo: str) -> Response:
        require_scope("repository:delete")
        w, r = api.visible_repo(ws, repo)
        sb.delete_repository(w.uuid, r.uuid)
        return Response(status=204)

    def refs_listing(ws: str, repo: str, patterns: list[str]) -> Response:
        require_scope("repository")
        w, r = api.visible_repo(ws, repo)
        items = sorted(api.refs(w, r, patterns), key=lambda o: o["name"])
        return api.listing(items)

    @app.get(R + "/refs")
    def list_refs(ws: str, repo: str) -> Response:
        return refs_listing(ws, repo, ["refs/heads", "refs/tags"])

    @app.get(R + "/refs/branches")
    def list_branches(ws: str, repo: str) -> Response:
        return refs_listing(ws, repo, ["refs/heads"])

    @app.get(R + "/refs/tags")
    def list_tags(ws: str, repo: str) -> Response:
        return refs_listing(ws, repo, ["refs/tags"])

    @app.get(R + "/refs/<kind>/<path:name>")
    def get_ref(ws: str, repo: str, kind: str, name: str) -> Response:
        require_scope("repository")
        prefix = {"branches": "refs/heads/", "tags": "refs/tags/"}.get(kind)
        if prefix is None:
            raise ApiError(404, "Resource not found")
        w, r = api.visible_repo(ws, repo)
        found = [o for o in api.refs(w, r, [prefix + name]) if o["name"] == name]
        if not found:
            raise ApiError(404, f"{'Branch' if kind == 'branches' else 'Tag'} \"{name}\" does not exist.")
        return jsonify(found[0])

    @app.get(R + "/commit/<rev>")
    def get_commit(ws: str, repo: str, rev: str) -> Response:
        require_scope("repository")
        w, r = api.visible_repo(ws, repo)
        sha = gitops.resolve(r.path, rev)
        if sha is None:
            raise ApiError(404, f"Commit not found: {rev}")
        info = gitops.commit_infos(r.path, [sha])[sha]
        return jsonify(dict(sb.renderer.commit(w, r, info, full_links=True),
                            repository=sb.renderer.repository(w, r, full=False)))

    @app.get(R + "/pullrequests")
    def list_pullrequests(ws: str, repo: str) -> Response:
        require_scope("pullrequest")
        api.visible_repo(ws, repo)
        return api.listing([])

    @app.route("/2.0/workspaces")
    @app.route("/2.0/user")
    @app.route("/2.0/user/<path:rest>")
    def not_for_apps(rest: str | None = None) -> Response:
        # Connect installations and access tokens are workspace principals, not users (§4.1).
        raise ApiError(403, NOT_ACCESSIBLE)
