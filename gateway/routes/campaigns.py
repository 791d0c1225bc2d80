"""Campaigns API: goals, templates, agents, campaigns, runs and drafts. Reading needs `read`,
everything that changes something needs `operate` (an agent's model provider, endpoint and key
name need owner or admin: the campaigns service checks ctx["role"]). Every body and query string
refuses unknown fields (schemas.Strict); every list answers {items, next_cursor}, next page
with `after`."""
from flask import Blueprint, g

from gateway.api import endpoint
from gateway.rpc import rpc
from services.campaigns import schemas as s
from services.common.schemas import EmptyBody

bp = Blueprint("campaigns", __name__, url_prefix="/api/v1")

# goals, templates, agents and campaigns share one shape of CRUD routes.
RESOURCES = (
    # (path, singular, schema, query schema, response schema)
    ("goals", "goal", s.GoalSchema, s.PageQuery, s.GoalOut),
    ("templates", "template", s.TemplateSchema, s.TemplateQuery, s.TemplateOut),
    ("agents", "agent", s.AgentSchema, s.AgentQuery, s.AgentOut),
    ("campaigns", "campaign", s.CampaignSchema, s.CampaignQuery, s.CampaignOut),
)


def _crud(path, one, schema, query, out):
    tags = ["campaigns"]
    key = f"{one}_id"  # the path parameter: /goals/<goal_id>
    page = s.page_of(out, f"{one.capitalize()}Page")
    # Its own class, so the OpenAPI document names the partial body "<Thing>Patch".
    patch = type(schema.__name__.replace("Schema", "Patch"), (schema,), {})

    @endpoint("read", query=query(), response=page(),
              summary=f"List {path} (newest first, keyset `after`)", tags=tags)
    def list_view(query):
        return getattr(rpc.campaigns, f"list_{path}")(g.ctx, query)

    @endpoint("operate", body=schema(), response=out(), status=201, summary=f"Create {'an' if one[0] in 'aeiou' else 'a'} {one}",
              tags=tags)
    def create_view(body):
        return getattr(rpc.campaigns, f"create_{one}")(g.ctx, body)

    @endpoint("read", response=out(), summary=f"One {one}", tags=tags)
    def get_view(**ids):
        return getattr(rpc.campaigns, f"get_{one}")(g.ctx, ids[key])

    @endpoint("operate", body=patch(partial=True), response=out(), summary=f"Change a {one}",
              tags=tags)
    def update_view(body, **ids):
        return getattr(rpc.campaigns, f"update_{one}")(g.ctx, ids[key], body)

    @endpoint("operate", status=204, summary=f"Delete a {one}", tags=tags)
    def delete_view(**ids):
        getattr(rpc.campaigns, f"delete_{one}")(g.ctx, ids[key])
        return None, 204

    bp.add_url_rule(f"/{path}", f"list_{path}", list_view, methods=["GET"])
    bp.add_url_rule(f"/{path}", f"create_{one}", create_view, methods=["POST"])
    bp.add_url_rule(f"/{path}/<{key}>", f"get_{one}", get_view, methods=["GET"])
    bp.add_url_rule(f"/{path}/<{key}>", f"update_{one}", update_view, methods=["PATCH"])
    bp.add_url_rule(f"/{path}/<{key}>", f"delete_{one}", delete_view, methods=["DELETE"])


for _resource in RESOURCES:
    _crud(*_resource)

RUN_PAGE = s.page_of(s.RunOut, "RunPage")
DRAFT_PAGE = s.page_of(s.DraftOut, "DraftPage")


@bp.get("/campaigns/<campaign_id>/preflight")
@endpoint("read", query=s.PreflightQuery(), response=s.PreflightOut(),
          summary="What the campaign still needs to run (every unmet requirement)", tags=["runs"])
def preflight(campaign_id, query):
    return rpc.campaigns.preflight(g.ctx, campaign_id, query)


@bp.post("/campaigns/<campaign_id>/runs")
@endpoint("operate", body=s.StartRunSchema(), response=s.RunOut(), status=201,
          summary="Start a test or live run (422 lists every unmet requirement)", tags=["runs"])
def start_run(campaign_id, body):
    return rpc.campaigns.start_run(g.ctx, campaign_id, body)


@bp.get("/runs")
@endpoint("read", query=s.RunQuery(), response=RUN_PAGE(), summary="List runs (filters campaign_id, status, run_type)",
          tags=["runs"])
def list_runs(query):
    return rpc.campaigns.list_runs(g.ctx, query)


@bp.get("/runs/<run_id>")
@endpoint("read", response=s.RunOut(), summary="A run with its counts and skips", tags=["runs"])
def get_run(run_id):
    return rpc.campaigns.get_run(g.ctx, run_id)


@bp.post("/runs/<run_id>/cancel")
@endpoint("operate", body=EmptyBody(), response=s.RunOut(), summary="Cancel a queued or running run (stops further drafts and sends)",
          tags=["runs"])
def cancel_run(run_id, body):
    return rpc.campaigns.cancel_run(g.ctx, run_id)


@bp.post("/runs/<run_id>/approve-all")
@endpoint("operate", body=EmptyBody(), response=s.ApproveRunOut(), summary="Approve every draft of the run awaiting approval", tags=["drafts"])
def approve_run(run_id, body):
    return rpc.campaigns.approve_run(g.ctx, run_id)


@bp.get("/drafts")
@endpoint("read", query=s.DraftQuery(), response=DRAFT_PAGE(), summary="List drafts (filters status, campaign_id, run_id)",
          tags=["drafts"])
def list_drafts(query):
    return rpc.campaigns.list_drafts(g.ctx, query)


@bp.get("/drafts/<draft_id>")
@endpoint("read", response=s.DraftOut(), summary="A draft with its review and history", tags=["drafts"])
def get_draft(draft_id):
    return rpc.campaigns.get_draft(g.ctx, draft_id)


@bp.post("/drafts/<draft_id>/approve")
@endpoint("operate", body=s.NoteSchema(), response=s.DraftOut(), summary="Approve a draft (it is sent)", tags=["drafts"])
def approve_draft(draft_id, body):
    return rpc.campaigns.approve_draft(g.ctx, draft_id, body)


@bp.post("/drafts/<draft_id>/reject")
@endpoint("operate", body=s.NoteSchema(), response=s.DraftOut(), summary="Reject a draft (final; never sent)",
          tags=["drafts"])
def reject_draft(draft_id, body):
    return rpc.campaigns.reject_draft(g.ctx, draft_id, body)


@bp.post("/drafts/<draft_id>/retry")
@endpoint("operate", body=EmptyBody(), response=s.DraftOut(), summary="Write and review a failed draft again", tags=["drafts"])
def retry_draft(draft_id, body):
    return rpc.campaigns.retry_draft(g.ctx, draft_id)
