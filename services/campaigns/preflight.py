"""What a campaign needs before it may run, per channel and run type. `check` is pure: it is given
the campaign, the run type and the facts other services know, and lists every unmet requirement
at once (never only the first)."""
from services.common.errors import NotReady

RUN_TYPES = ("test", "live")
NEEDS_REVIEWER = ("email", "sms")
NEEDS_TEMPLATE = ("email",)
NEEDS_PHONE = ("sms", "phone")


def gather(campaign, run_type, peers, ctx):
    """Ask other services what only they know: does the segment exist, is the channel set up."""
    facts = {"segment_exists": None, "readiness": None}
    if run_type == "live" and campaign.get("segment_id"):
        facts["segment_exists"] = bool(peers.segment_exists(ctx, str(campaign["segment_id"])))
    facts["readiness"] = peers.channel_readiness(ctx, campaign["channel"])
    if run_type == "test" and campaign["channel"] in NEEDS_PHONE:
        # A test run only reaches the organization's test recipients: one needs a phone number.
        recipients = peers.organization(ctx).get("test_recipients") or []
        facts["test_phone_recipients"] = sum(1 for r in recipients if r.get("phone"))
    return facts


def check(campaign, run_type, facts):
    """[{requirement, message}] for everything missing; empty when the run may start."""
    channel = campaign["channel"]
    reasons = []

    def need(requirement, message, **extra):
        reasons.append(dict({"requirement": requirement, "message": message}, **extra))

    if not campaign.get("goal_id"):
        need("goal", "choose a goal for this campaign")
    if not campaign.get("writer_agent_id"):
        need("writer", "choose a writer agent")
    if channel in NEEDS_REVIEWER and not campaign.get("reviewer_agent_id"):
        need("reviewer", f"{channel} campaigns need a reviewer agent")
    if channel in NEEDS_TEMPLATE and not campaign.get("template_id"):
        need("template", "email campaigns need a template")
    if run_type == "live":
        if not campaign.get("segment_id"):
            need("segment", "a live run needs a segment (a test run does not)")
        elif facts.get("segment_exists") is False:
            need("segment", "the campaign's segment no longer exists; choose another")
    if run_type == "test" and channel in NEEDS_PHONE and facts.get("test_phone_recipients") == 0:
        need("test_recipients", "add a test recipient with a phone number: a test run reaches "
             f"only the organization's test recipients, and none of them has one for {channel}")
    if campaign.get("status") != "active":
        need("active", "the campaign is inactive; activate it to run it")
    readiness = facts.get("readiness") or {}
    if not readiness.get("ready"):
        missing = list(readiness.get("missing") or [])
        need("channel_setup",
             f"{channel} delivery is not set up" + (f": missing {', '.join(missing)}" if missing else ""),
             channel=channel, missing=missing)
    return reasons


def require_ready(campaign, run_type, facts):
    reasons = check(campaign, run_type, facts)
    if reasons:
        raise NotReady("the campaign cannot run yet: "
                       + ", ".join(r["requirement"] for r in reasons), reasons=reasons)
