"""The dashboard: which of its three modes the organization is in (getting_started, going_live,
operational), the steps of each with what to do next, headline counts, and the latest messages
received and sent. Each service answers for its own data (campaigns: the starter campaign and its
test run, agents and campaigns; messaging: email setup, incoming email, emails sent, recent
messages; contacts: how many); this module only composes the answers (docs/dashboard.md)."""
from flask import Blueprint, current_app, g
from marshmallow import Schema, fields
from werkzeug.exceptions import HTTPException

from gateway.api import endpoint
from gateway.permissions import allowed
from gateway.routes.messaging import CommunicationOut
from gateway.rpc import rpc
from services.common.schemas import EmptyBody

bp = Blueprint("dashboard", __name__, url_prefix="/api/v1")

STATES = ("getting_started", "going_live", "operational")
SKIP_PATH = "/api/v1/dashboard/incoming-email/skip"

GETTING_STARTED = ("writer", "reviewer", "test_run")
GOING_LIVE = ("sender_identity", "email_provider", "incoming_email")

CARDS = {
    "getting_started": {
        "title": "Generate your first message",
        "text": "Choose a writer and a reviewer agent for the starter campaign, then test-run it: "
                "it drafts a message to your test recipients for you to approve.",
        "steps": GETTING_STARTED},
    "going_live": {
        "title": "Going Live",
        "text": "Set up email delivery: the sender identity, the outgoing provider and, "
                "optionally, incoming email so replies reach you.",
        "steps": GOING_LIVE},
}
OPERATIONAL_CARDS = (
    {"kind": "quick_actions", "title": "Quick actions", "text": "What to do next.", "steps": []},
    {"kind": "recent_received", "title": "Recently received",
     "text": "The latest messages your contacts sent you.", "steps": []},
    {"kind": "recent_sent", "title": "Recently sent",
     "text": "The latest messages sent from this organization.", "steps": []},
)
QUICK_ACTIONS = (
    ("Create a campaign", "POST", "/api/v1/campaigns"),
    ("Import contacts", "POST", "/api/v1/contacts/imports"),
    ("Review drafts awaiting approval", "GET", "/api/v1/drafts?status=pending_approval"),
    ("Open the communications feed", "GET", "/api/v1/communications"),
    ("See analytics", "GET", "/api/v1/analytics"),
)


# -- response schemas -------------------------------------------------------------------------

class ActionOut(Schema):
    action = fields.String()
    method = fields.String()
    path = fields.String()


class StepOut(Schema):
    done = fields.Boolean()
    optional = fields.Boolean()
    skipped = fields.Boolean()
    title = fields.String()
    what_to_do = fields.String()
    actions = fields.List(fields.Nested(ActionOut))


class StepsOut(Schema):
    writer = fields.Nested(StepOut)
    reviewer = fields.Nested(StepOut)
    test_run = fields.Nested(StepOut)
    sender_identity = fields.Nested(StepOut)
    email_provider = fields.Nested(StepOut)
    incoming_email = fields.Nested(StepOut)


class CardOut(Schema):
    kind = fields.String()
    title = fields.String()
    text = fields.String()
    steps = fields.List(fields.String())


class DashboardCountsOut(Schema):
    agents = fields.Integer()
    campaigns = fields.Integer()
    contacts = fields.Integer()
    emails_sent = fields.Integer()


class DashboardOut(Schema):
    state = fields.String(metadata={"enum": list(STATES)})
    starter_campaign_id = fields.String(allow_none=True)
    steps = fields.Nested(StepsOut)
    cards = fields.List(fields.Nested(CardOut))
    counts = fields.Nested(DashboardCountsOut)
    recent_received = fields.List(fields.Nested(CommunicationOut))
    recent_sent = fields.List(fields.Nested(CommunicationOut))
    quick_actions = fields.List(fields.Nested(ActionOut))


class IncomingEmailOut(Schema):
    done = fields.Boolean()
    skipped = fields.Boolean()
    skipped_at = fields.String(allow_none=True)
    reply_domain_set = fields.Boolean()
    inbound_received = fields.Boolean()


# -- composing --------------------------------------------------------------------------------

def state_of(steps):
    """getting_started until writer, reviewer and test run are done; then going_live until the
    sender identity and outgoing provider are set and incoming email is done or skipped."""
    if not all(steps[name]["done"] for name in GETTING_STARTED):
        return "getting_started"
    live = steps["sender_identity"]["done"] and steps["email_provider"]["done"]
    incoming = steps["incoming_email"]
    if not (live and (incoming["done"] or incoming["skipped"])):
        return "going_live"
    return "operational"


def compose(campaigns, messaging, contacts, may=lambda method, path: True):
    """The dashboard from each service's facts; `may(method, path)` keeps only the actions the
    caller's role is allowed to take."""
    starter = campaigns["starter_campaign_id"]
    campaign = f"/api/v1/campaigns/{starter}" if starter else None
    # Without a starter campaign (deleted) the way forward is a campaign of one's own.
    create = [("Create a campaign", "POST", "/api/v1/campaigns")]
    missing = set(messaging["email"]["missing"])
    incoming = messaging["incoming_email"]

    def step(done, title, what_to_do, actions, optional=False, skipped=False):
        return {"done": bool(done), "optional": optional, "skipped": bool(skipped),
                "title": title, "what_to_do": what_to_do,
                "actions": [a for a in _actions(actions) if may(a["method"], a["path"])]}

    steps = {
        "writer": step(campaigns["writer_selected"], "Choose a writer agent",
                       "Select the writer agent that drafts the starter campaign's messages "
                       "(writer_agent_id).", [("Choose the writer", "PATCH", campaign)] if campaign else create),
        "reviewer": step(campaigns["reviewer_selected"], "Choose a reviewer agent",
                         "Select the reviewer agent that checks each draft before a person "
                         "approves it (reviewer_agent_id).",
                         [("Choose the reviewer", "PATCH", campaign)] if campaign else create),
        "test_run": step(campaigns["test_run_done"], "Test-run the starter campaign",
                         "Start a test run ({\"type\": \"test\"}): it drafts one message per test "
                         "recipient, for you to approve and receive.",
                         [("Start a test run", "POST", f"{campaign}/runs")] if campaign else create),
        "sender_identity": step("sender_identity" not in missing, "Set the sender identity",
                                "Give the name and address your emails come from.",
                                [("Set the sender", "PUT", "/api/v1/settings/email/sender")]),
        "email_provider": step("email_provider" not in missing, "Connect the outgoing provider",
                               "Connect the SMTP provider that sends your email.",
                               [("Set the provider", "PUT", "/api/v1/settings/email/provider")]),
        "incoming_email": step(
            incoming["done"], "Receive replies (optional)",
            "Set a reply domain on the sender identity, or forward your mail to the inbound "
            "address in the email settings; or skip this step for now and come back later.",
            [("Set a reply domain", "PUT", "/api/v1/settings/email/sender"),
             ("Undo the skip", "DELETE", SKIP_PATH) if incoming["skipped"]
             else ("Skip for now", "POST", SKIP_PATH)],
            optional=True, skipped=incoming["skipped"]),
    }
    state = state_of(steps)
    if state == "operational":
        cards = [dict(c, steps=[]) for c in OPERATIONAL_CARDS]
        quick = [a for a in _actions(QUICK_ACTIONS) if may(a["method"], a["path"])]
    else:
        card = CARDS[state]
        cards = [{"kind": state, "title": card["title"], "text": card["text"],
                  "steps": list(card["steps"])}]
        quick = []
    return {
        "state": state, "starter_campaign_id": starter, "steps": steps, "cards": cards,
        "counts": {"agents": campaigns["agents"], "campaigns": campaigns["campaigns"],
                   "contacts": contacts["total"], "emails_sent": messaging["emails_sent"]},
        "recent_received": messaging["recent_received"], "recent_sent": messaging["recent_sent"],
        "quick_actions": quick,
    }


def _actions(triples):
    return [{"action": a, "method": m, "path": p} for a, m, p in triples]


def role_may(role):
    """may(method, path) for `role`: the permission the gateway's own route for that path
    declares (gateway/permissions.py), so an action is offered only to those it would let in."""
    adapter = current_app.url_map.bind("localhost")

    def may(method, path):
        try:
            name, _ = adapter.match(path.split("?", 1)[0], method=method)
        except HTTPException:
            return False
        meta = getattr(current_app.view_functions.get(name), "openapi", None)
        return meta is not None and (meta["permission"] in ("public", "signed_in", "self")
                                     or allowed(meta["permission"], role))

    return may


# -- routes -----------------------------------------------------------------------------------

@bp.get("/dashboard")
@endpoint("read", response=DashboardOut(), tags=["dashboard"],
          summary="The dashboard: mode (getting_started, going_live, operational), its steps, "
                  "headline counts, recent messages and quick actions")
def dashboard():
    return compose(rpc.campaigns.dashboard_facts(g.ctx), rpc.messaging.dashboard_facts(g.ctx),
                   rpc.contacts.count_contacts(g.ctx), role_may(g.ctx["role"]))


@bp.post("/dashboard/incoming-email/skip")
@endpoint("manage", body=EmptyBody(), response=IncomingEmailOut(), tags=["dashboard"],
          summary="Defer the optional incoming-email step (the dashboard may become operational "
                  "without it)")
def skip_incoming_email(body):
    return rpc.messaging.set_incoming_email_skipped(g.ctx, {"skipped": True})


@bp.delete("/dashboard/incoming-email/skip")
@endpoint("manage", response=IncomingEmailOut(), tags=["dashboard"],
          summary="Undo deferring the incoming-email step")
def resume_incoming_email():
    return rpc.messaging.set_incoming_email_skipped(g.ctx, {"skipped": False})
