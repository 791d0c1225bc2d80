"""The dashboard's mode, steps and cards from each service's facts (no broker, no database)."""
from gateway.routes.dashboard import compose

STARTER = "0b7d6a52-4f1e-4c55-9a43-3f8d2c1e9a10"


def campaigns(**kw):
    facts = {"starter_campaign_id": STARTER, "writer_selected": True, "reviewer_selected": True,
             "test_run_done": True, "agents": 2, "campaigns": 1}
    facts.update(kw)
    return facts


def messaging(missing=(), done=False, skipped=False, **kw):
    facts = {"email": {"channel": "email", "ready": not missing, "missing": list(missing)},
             "incoming_email": {"done": done, "skipped": skipped, "skipped_at": None,
                                "reply_domain_set": done, "inbound_received": False},
             "emails_sent": 7, "recent_received": [], "recent_sent": []}
    facts.update(kw)
    return facts


CONTACTS = {"total": 3}


def test_without_a_test_run_of_the_starter_campaign_it_is_getting_started():
    board = compose(campaigns(test_run_done=False), messaging(), CONTACTS)
    assert board["state"] == "getting_started"
    assert board["cards"][0]["title"] == "Generate your first message"
    assert board["cards"][0]["steps"] == ["writer", "reviewer", "test_run"]
    assert board["quick_actions"] == []
    assert board["steps"]["test_run"]["actions"] == [
        {"action": "Start a test run", "method": "POST",
         "path": f"/api/v1/campaigns/{STARTER}/runs"}]


def test_a_missing_writer_or_reviewer_keeps_it_getting_started_even_after_a_test_run():
    for missing in ({"writer_selected": False}, {"reviewer_selected": False}):
        board = compose(campaigns(**missing), messaging(done=True), CONTACTS)
        assert board["state"] == "getting_started"


def test_email_setup_done_before_the_test_run_does_not_skip_getting_started():
    assert compose(campaigns(test_run_done=False), messaging(done=True), CONTACTS)["state"] == \
        "getting_started"


def test_after_getting_started_missing_email_setup_is_going_live():
    for missing in (("sender_identity",), ("email_provider",)):
        board = compose(campaigns(), messaging(missing=missing, done=True), CONTACTS)
        assert board["state"] == "going_live"
        assert board["cards"][0]["title"] == "Going Live"
        assert board["cards"][0]["steps"] == ["sender_identity", "email_provider", "incoming_email"]


def test_incoming_email_neither_done_nor_skipped_is_still_going_live():
    board = compose(campaigns(), messaging(), CONTACTS)
    assert board["state"] == "going_live"
    step = board["steps"]["incoming_email"]
    assert (step["done"], step["skipped"], step["optional"]) == (False, False, True)
    assert {"action": "Skip for now", "method": "POST",
            "path": "/api/v1/dashboard/incoming-email/skip"} in step["actions"]


def test_skipping_incoming_email_reaches_operational_with_an_undo():
    board = compose(campaigns(), messaging(skipped=True), CONTACTS)
    assert board["state"] == "operational"
    assert [c["kind"] for c in board["cards"]] == ["quick_actions", "recent_received", "recent_sent"]
    assert board["quick_actions"] and all(set(a) == {"action", "method", "path"}
                                          for a in board["quick_actions"])
    assert {"action": "Undo the skip", "method": "DELETE",
            "path": "/api/v1/dashboard/incoming-email/skip"} in \
        board["steps"]["incoming_email"]["actions"]


def test_incoming_email_done_reaches_operational_without_skipping():
    assert compose(campaigns(), messaging(done=True), CONTACTS)["state"] == "operational"


def test_counts_are_present_in_every_mode():
    for facts in (campaigns(test_run_done=False), campaigns()):
        board = compose(facts, messaging(), CONTACTS)
        assert board["counts"] == {"agents": 2, "campaigns": 1, "contacts": 3, "emails_sent": 7}


def test_actions_the_role_may_not_take_are_left_out():
    read_only = lambda method, path: method == "GET"  # noqa: E731
    board = compose(campaigns(), messaging(done=True), CONTACTS, may=read_only)
    assert board["steps"]["incoming_email"]["actions"] == []
    assert board["quick_actions"] and all(a["method"] == "GET" for a in board["quick_actions"])


def test_without_a_starter_campaign_the_steps_offer_creating_a_campaign():
    board = compose(campaigns(starter_campaign_id=None), messaging(), CONTACTS)
    assert board["starter_campaign_id"] is None
    for name in ("writer", "reviewer", "test_run"):
        assert board["steps"][name]["actions"] == [
            {"action": "Create a campaign", "method": "POST", "path": "/api/v1/campaigns"}]
