"""Preflight lists every unmet requirement of a run at once, per channel and run type."""
import pytest

from services.campaigns import preflight
from services.common.errors import NotReady

READY = {"segment_exists": True, "readiness": {"channel": "email", "ready": True, "missing": []}}
FULL = {"channel": "email", "goal_id": "g", "writer_agent_id": "w", "reviewer_agent_id": "r",
        "template_id": "t", "segment_id": "s", "status": "active"}


def requirements(campaign, run_type="live", facts=READY):
    return [r["requirement"] for r in preflight.check(campaign, run_type, facts)]


def test_a_complete_email_campaign_is_ready():
    assert requirements(FULL) == []


def test_an_empty_inactive_email_campaign_lists_everything_at_once():
    bare = {"channel": "email", "status": "inactive"}
    facts = {"readiness": {"ready": False, "missing": ["sender_identity", "email_provider"]}}
    reasons = preflight.check(bare, "live", facts)
    assert [r["requirement"] for r in reasons] == [
        "goal", "writer", "reviewer", "template", "segment", "active", "channel_setup"]
    assert reasons[-1]["missing"] == ["sender_identity", "email_provider"]
    assert reasons[-1]["message"] == "email delivery is not set up: missing sender_identity, email_provider"


def test_a_test_run_does_not_need_a_segment():
    assert requirements(dict(FULL, segment_id=None), "test") == []
    assert requirements(dict(FULL, segment_id=None), "live") == ["segment"]


def test_a_deleted_segment_fails_a_live_run():
    assert requirements(FULL, "live", dict(READY, segment_exists=False)) == ["segment"]


def test_sms_needs_a_reviewer_but_no_template():
    sms = dict(FULL, channel="sms", template_id=None, reviewer_agent_id=None)
    assert requirements(sms) == ["reviewer"]


def test_phone_needs_neither_reviewer_nor_template():
    phone = dict(FULL, channel="phone", template_id=None, reviewer_agent_id=None)
    assert requirements(phone) == []


def test_require_ready_raises_not_ready_with_the_reasons():
    with pytest.raises(NotReady) as err:
        preflight.require_ready(dict(FULL, goal_id=None), "live", READY)
    assert err.value.reasons == [{"requirement": "goal", "message": "choose a goal for this campaign"}]


SMS = dict(FULL, channel="sms", template_id=None)
SMS_READY = {"segment_exists": None, "readiness": {"channel": "sms", "ready": True, "missing": []}}


def test_an_sms_test_run_needs_a_test_recipient_with_a_phone_number():
    reasons = preflight.check(SMS, "test", dict(SMS_READY, test_phone_recipients=0))
    assert reasons == [{"requirement": "test_recipients",
                        "message": "add a test recipient with a phone number: a test run reaches "
                                   "only the organization's test recipients, and none of them has "
                                   "one for sms"}]
    assert requirements(dict(SMS, channel="phone", reviewer_agent_id=None), "test",
                        dict(SMS_READY, test_phone_recipients=0)) == ["test_recipients"]


def test_an_sms_test_run_with_a_phone_test_recipient_is_ready_and_live_runs_never_ask():
    assert requirements(SMS, "test", dict(SMS_READY, test_phone_recipients=1)) == []
    assert requirements(SMS, "live", SMS_READY) == []
    assert requirements(FULL, "test", READY) == []


class Peers:
    def __init__(self, test_recipients):
        self.test_recipients = test_recipients

    def channel_readiness(self, ctx, channel):
        return {"channel": channel, "ready": True, "missing": []}

    def segment_exists(self, ctx, segment_id):
        return True

    def organization(self, ctx):
        return {"test_recipients": self.test_recipients}


def test_preflight_counts_the_test_recipients_that_have_a_phone_number():
    owner_only = Peers([{"email": "owner@example.org", "name": "Olive"}])
    assert preflight.gather(SMS, "test", owner_only, {})["test_phone_recipients"] == 0
    with_phone = Peers([{"email": "o@example.org", "name": "Olive", "phone": "+12025550143"}])
    assert preflight.gather(SMS, "test", with_phone, {})["test_phone_recipients"] == 1
    assert "test_phone_recipients" not in preflight.gather(FULL, "test", owner_only, {})
