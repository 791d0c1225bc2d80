"""Writing and reviewing one recipient's draft decides its status and history: flagged drafts and
drafts without auto-approval wait for a person; agent failures fail the draft with the reason."""
from services.campaigns import drafts

WRITER = {"name": "Starter writer", "provider": "builtin", "voice": "", "instructions": ""}
REVIEWER = {"name": "Starter reviewer", "provider": "builtin", "instructions": ""}
TEMPLATE = {"subject": "{{first_name}}, hello", "preheader": "", "body": "Shall we talk?"}


def run(channel="email", template=TEMPLATE, reviewer=REVIEWER, writer=WRITER):
    return {"id": "r1", "org_id": "o1", "campaign_id": "c1", "channel": channel, "run_type": "live",
            "instructions": "", "snapshot": {"goal": {"name": "Pilot", "description": "Offer a pilot"},
                                             "template": template, "writer": writer,
                                             "reviewer": reviewer}}


ORG = {"name": "Larkspur", "description": "Galas.", "auto_approve_campaign_emails": True}


def compose(r, contact, auto):
    return drafts.compose(r, drafts.brief_for(r, ORG), contact, auto)


def test_an_approved_draft_waits_for_a_person_without_auto_approval():
    out, steps = compose(run(), {"name": "Ada Byron"}, auto=False)
    assert (out["status"], out["verdict"], out["review_reasons"]) == ("pending_approval", "approve", [])
    assert [(s[0], s[1]) for s in steps] == [(None, "generating"), ("generating", "pending_approval")]
    assert steps[1][2] == "agent:Starter reviewer" and steps[1][3] == "review: approve"


def test_auto_approval_hands_an_approved_draft_to_messaging_at_once():
    out, steps = compose(run(), {"name": "Ada Byron"}, auto=True)
    assert out["status"] == "sending"
    assert [(s[0], s[1]) for s in steps] == [
        (None, "generating"), ("generating", "approved"), ("approved", "sending")]
    assert "auto-approved" in steps[1][3]


def test_a_flagged_draft_waits_for_a_person_even_with_auto_approval():
    out, steps = compose(run(), {"email": "x@example.org"}, auto=True)  # no name: {{first_name}} stays
    assert (out["status"], out["verdict"]) == ("pending_approval", "flag")
    assert out["review_reasons"] == ["unresolved placeholder in subject: {{first_name}}"]
    assert "unresolved placeholder" in steps[-1][3]


def test_auto_approval_is_for_emails_only():
    assert drafts.auto_approves(run("email"), ORG) is True
    assert drafts.auto_approves(run("sms"), ORG) is False
    assert drafts.auto_approves(run("email"), dict(ORG, auto_approve_campaign_emails=False)) is False


def test_a_phone_campaign_without_reviewer_records_no_verdict():
    out, steps = compose(run("phone", template=None, reviewer=None), {"name": "Ada Byron"}, auto=False)
    assert (out["status"], out["verdict"]) == ("pending_approval", None)
    assert steps[-1][3] == "no reviewer for this channel"


def test_a_writer_that_cannot_reach_its_model_fails_the_draft_with_the_reason(monkeypatch):
    monkeypatch.setenv("AGENT_RETRIES", "0")
    broken = dict(WRITER, provider="openai_compatible", base_url="http://127.0.0.1:9/v1", model="m")
    out, steps = compose(run(writer=broken), {"name": "Ada Byron"}, auto=True)
    assert out["status"] == "failed"
    assert out["error"] == ("writer failed: model provider failed after 1 attempt: "
                            "could not reach 127.0.0.1:9 (ConnectionError)")
    assert [(s[0], s[1]) for s in steps] == [(None, "generating"), ("generating", "failed")]


def test_a_page_stops_being_written_once_the_run_is_cancelled():
    recipients = [{"recipient_key": str(i), "contact_id": str(i), "to_address": f"g{i}@example.org",
                   "to_name": f"Guest {i}", "contact": {"name": f"Guest {i}"}} for i in range(5)]
    beats = []

    def heartbeat():  # the worker renews its lease here; the third answer says "cancelled"
        beats.append(1)
        return len(beats) < 3

    rows = drafts.write_page(run(), ORG, recipients, heartbeat=heartbeat)
    assert [r["recipient_key"] for r in rows] == ["0", "1"]
    assert len(drafts.write_page(run(), ORG, recipients, skip_keys={"1"})) == 4
