"""The JSON API, /api/v1: every endpoint is scoped to the authenticated installation's tenant."""
from __future__ import annotations

from flask import Blueprint, g, jsonify, request, url_for

from strongroom import access, workspace
from strongroom.errors import InvalidInput

from .auth import authenticate_api
from .deps import ctx, dispatcher

bp = Blueprint("api", __name__, url_prefix="/api/v1")
MAX_PAGELEN = 100


bp.before_request(authenticate_api)


def json_body() -> dict:
    """The request body as a JSON object, or a 400."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidInput("the request body must be a JSON object")
    return body


def paging() -> tuple[int, int]:
    """`page` and `pagelen` from the query string (pagelen at most 100), or a 400."""
    try:
        page = int(request.args.get("page", "1"))
        pagelen = int(request.args.get("pagelen", "50"))
    except ValueError as exc:
        raise InvalidInput("page and pagelen must be integers") from exc
    if page < 1 or not 1 <= pagelen <= MAX_PAGELEN:
        raise InvalidInput(f"page must be >= 1 and pagelen between 1 and {MAX_PAGELEN}")
    return page, pagelen


def paged(values: list, total: int, page: int, pagelen: int):
    """The list envelope: values, page, pagelen, size and next."""
    body = {"values": values, "page": page, "pagelen": pagelen, "size": total}
    if page * pagelen < total:
        args = request.args.to_dict(flat=True)
        args.update(page=page + 1, pagelen=pagelen)
        args.pop("jwt", None)
        body["next"] = url_for(request.endpoint, _external=True, **(request.view_args or {}), **args)
    return jsonify(body)


@bp.get("/installation")
def installation():
    return jsonify(workspace.installation_view(ctx(), g.tenant_id))


@bp.get("/repositories")
def repositories():
    page, pagelen = paging()
    values, total = workspace.list_repositories(ctx(), g.tenant_id, q=request.args.get("q"),
                                                state=request.args.get("state"), page=page, pagelen=pagelen)
    return paged(values, total, page, pagelen)


@bp.get("/repositories/<uuid>")
def repository(uuid: str):
    return jsonify(workspace.repository_detail(ctx(), g.tenant_id, uuid))


@bp.put("/scope")
def scope():
    view, to_sync = workspace.update_scope_mode(ctx(), g.tenant_id, json_body().get("mode"), actor=g.actor)
    for repository_id in to_sync:
        dispatcher().sync_repository(repository_id)
    return jsonify(view)


@bp.put("/repositories/<uuid>/scope")
def repository_scope(uuid: str):
    view, to_sync = workspace.update_repository_scope(ctx(), g.tenant_id, uuid, json_body().get("in_scope"),
                                                      actor=g.actor)
    if to_sync:
        dispatcher().sync_repository(to_sync)
    return jsonify(view)


@bp.post("/backups")
def backup_all():
    job_id = workspace.start_workspace_backup(ctx(), g.tenant_id)
    dispatcher().run_job(job_id)
    return jsonify({"job": workspace.job_detail(ctx(), g.tenant_id, job_id)}), 202


@bp.post("/repositories/<uuid>/backups")
def backup_repository(uuid: str):
    job_id, repo_id = workspace.start_repository_backup(ctx(), g.tenant_id, uuid)
    dispatcher().sync_repository(repo_id)
    return jsonify({"job": workspace.job_detail(ctx(), g.tenant_id, job_id)}), 202


@bp.get("/jobs/<job_id>")
def job(job_id: str):
    return jsonify(workspace.job_detail(ctx(), g.tenant_id, job_id))


@bp.get("/repositories/<uuid>/snapshots")
def snapshots(uuid: str):
    page, pagelen = paging()
    values, total = workspace.list_snapshots(ctx(), g.tenant_id, uuid, page=page, pagelen=pagelen)
    return paged(values, total, page, pagelen)


@bp.post("/access-tokens")
def create_token():
    body = json_body()
    issued = access.create_access_token(ctx(), g.tenant_id, body.get("label", ""), body.get("expires_in_days"),
                                        actor=g.actor)
    return jsonify({"id": issued.id, "token": issued.token, "username": issued.username,
                    "label": issued.label, "expires_at": workspace.iso(issued.expires_at)}), 201


@bp.get("/access-tokens")
def list_tokens():
    rows = access.list_access_tokens(ctx(), g.tenant_id)
    values = [{k: (workspace.iso(v) if k.endswith("_at") else v) for k, v in row.items()} for row in rows]
    return jsonify({"values": values, "page": 1, "pagelen": len(values), "size": len(values)})


@bp.delete("/access-tokens/<token_id>")
def revoke_token(token_id: str):
    access.revoke_access_token(ctx(), g.tenant_id, token_id, actor=g.actor)
    return "", 204
