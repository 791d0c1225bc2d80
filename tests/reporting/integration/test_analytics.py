"""Analytics counts come only from the campaigns and messaging events, each counted once even when
the broker delivers it twice, and answer per channel, campaign and UTC day."""
import time
import uuid

import pytest
from nameko.standalone.events import event_dispatcher

from services.common.errors import Invalid


def new_id():
    return str(uuid.uuid4())


class Events:
    """Publishes events as the campaigns and messaging services do (with event_id and org_id)."""

    def __init__(self, stack):
        self.dispatch = event_dispatcher({"AMQP_URI": stack.amqp_uri, "serializer": "json"})

    def publish(self, source, event_type, payload, event_id=None):
        body = dict(payload, event_id=event_id or new_id())
        self.dispatch(source, event_type, body)
        return body["event_id"]


def wait_for(fetch, expected, timeout=20):
    """Poll until fetch() == expected; then make sure it stays there (no late double count)."""
    deadline = time.time() + timeout
    value = fetch()
    while value != expected and time.time() < deadline:
        time.sleep(0.2)
        value = fetch()
    time.sleep(1.0)
    return fetch()


def a_live_and_a_test_run(events, org_id, day="2026-12-01"):
    """One live email run (5 targeted, 1 skipped, 4 drafted, 1 rejected, 2 sent, 1 failed, 1 reply)
    and one test run (1 targeted, drafted and sent), with some events delivered twice.

    drafts_approved is left to its own test: the messaging service really consumes it and tries
    to send those drafts, which would add its own sent/failed counts to these."""
    campaign, live, test = new_id(), new_id(), new_id()
    at = f"{day}T15:02:00+00:00"
    run = {"org_id": org_id, "campaign_id": campaign, "channel": "email", "occurred_at": at}
    events.publish("campaigns", "run_queued", dict(run, run_id=live, run_type="live"))
    progress = events.publish("campaigns", "run_progress", dict(
        run, run_id=live, is_test=False, targeted=5, skipped=1, drafted=4))
    events.publish("campaigns", "drafts_rejected", dict(
        run, run_id=live, is_test=False, draft_ids=[new_id()]))
    results = [
        {"draft_id": new_id(), "communication_id": new_id(), "run_id": live,
         "campaign_id": campaign, "status": status,
         "error": None if status == "sent" else "550 5.1.1 user unknown"}
        for status in ("sent", "sent", "failed")]
    sent = events.publish("messaging", "communications_sent", {
        "org_id": org_id, "channel": "email", "is_test": False, "results": results, "occurred_at": at})
    events.publish("messaging", "reply_received", {
        "org_id": org_id, "communication_id": new_id(), "thread_id": new_id(), "contact_id": new_id(),
        "campaign_id": campaign, "run_id": live, "channel": "email", "is_test": False,
        "automatic": False, "occurred_at": at, "in_reply_to_communication_id": results[0]["communication_id"]})
    events.publish("campaigns", "run_completed", dict(
        run, run_id=live, is_test=False, counts={"targeted": 5, "sent": 2}))
    # The test run: only the owner, marked test.
    events.publish("campaigns", "run_queued", dict(run, run_id=test, run_type="test"))
    events.publish("campaigns", "run_progress", dict(
        run, run_id=test, is_test=True, targeted=1, skipped=0, drafted=1))
    events.publish("messaging", "communications_sent", {
        "org_id": org_id, "channel": "email", "is_test": True, "occurred_at": at, "results": [
            {"draft_id": new_id(), "communication_id": new_id(), "run_id": test,
             "campaign_id": campaign, "status": "sent", "error": None}]})
    # The broker delivering the same events again must not count them twice.
    events.publish("campaigns", "run_progress", dict(
        run, run_id=live, is_test=False, targeted=5, skipped=1, drafted=4), event_id=progress)
    events.publish("messaging", "communications_sent", {
        "org_id": org_id, "channel": "email", "is_test": False, "results": results,
        "occurred_at": at}, event_id=sent)
    return {"campaign": campaign, "live": live, "test": test}


LIVE = {"targeted": 5, "skipped": 1, "drafted": 4, "approved": 0, "rejected": 1, "sent": 2,
        "failed": 1, "replied": 1, "runs": 1, "runs_completed": 1}
WITH_TEST = dict(LIVE, targeted=6, drafted=5, sent=3, runs=2)
NOTHING = {m: 0 for m in LIVE}


@pytest.fixture(scope="module")
def counted(stack):
    events = Events(stack)
    org_id = new_id()
    ids = a_live_and_a_test_run(events, org_id)
    with stack.rpc() as rpc:
        totals = wait_for(lambda: rpc.reporting.analytics({"org_id": org_id}, {})["totals"], LIVE)
    return dict(ids, org_id=org_id, totals=totals)


def test_every_step_of_a_live_run_is_counted_once_even_when_events_are_redelivered(counted):
    assert counted["totals"] == LIVE


def test_test_runs_are_left_out_unless_asked_for(stack, counted):
    with stack.rpc() as rpc:
        answer = rpc.reporting.analytics({"org_id": counted["org_id"]}, {"include_test": True})
        only_test = rpc.reporting.analytics({"org_id": counted["org_id"]},
                                            {"include_test": True, "run_id": counted["test"]})
    assert answer["totals"] == WITH_TEST
    assert only_test["totals"] == dict(NOTHING, targeted=1, drafted=1, sent=1, runs=1)


def test_counts_break_down_by_channel_campaign_and_day(stack, counted):
    with stack.rpc() as rpc:
        answer = rpc.reporting.analytics({"org_id": counted["org_id"]}, {})
    assert answer["by_channel"] == [dict(LIVE, channel="email")]
    assert answer["by_campaign"] == [dict(LIVE, campaign_id=counted["campaign"])]
    assert answer["by_day"] == [dict(LIVE, day="2026-12-01")]


def test_filters_narrow_the_counts_by_date_channel_campaign_and_run(stack, counted):
    ctx = {"org_id": counted["org_id"]}
    with stack.rpc() as rpc:
        on_the_day = rpc.reporting.analytics(ctx, {"from": "2026-12-01", "to": "2026-12-01"})
        before = rpc.reporting.analytics(ctx, {"to": "2026-11-30"})
        after = rpc.reporting.analytics(ctx, {"from": "2026-12-02"})
        sms = rpc.reporting.analytics(ctx, {"channel": "sms"})
        campaign = rpc.reporting.analytics(ctx, {"campaign_id": counted["campaign"]})
        other_campaign = rpc.reporting.analytics(ctx, {"campaign_id": new_id()})
        live_run = rpc.reporting.analytics(ctx, {"run_id": counted["live"]})
    assert on_the_day["totals"] == LIVE
    assert before["totals"] == after["totals"] == sms["totals"] == other_campaign["totals"] == NOTHING
    assert campaign["totals"] == live_run["totals"] == LIVE
    assert sms["by_channel"] == [] and sms["by_day"] == []


def test_another_organization_sees_none_of_these_counts(stack, counted):
    with stack.rpc() as rpc:
        answer = rpc.reporting.analytics({"org_id": new_id()}, {"campaign_id": counted["campaign"]})
    assert answer["totals"] == NOTHING


def test_bad_filters_are_refused_naming_the_field(stack):
    ctx = {"org_id": new_id()}
    with stack.rpc() as rpc:
        with pytest.raises(Invalid) as bad_date:
            rpc.reporting.analytics(ctx, {"from": "2026-13-40"})
        with pytest.raises(Invalid) as backwards:
            rpc.reporting.analytics(ctx, {"from": "2026-12-02", "to": "2026-12-01"})
        with pytest.raises(Invalid) as bad_ids:
            rpc.reporting.analytics(ctx, {"run_id": "run-7f3a", "channel": "fax"})
    assert set(bad_date.value.errors) == {"from"}
    assert set(backwards.value.errors) == {"to"}
    assert set(bad_ids.value.errors) == {"run_id", "channel"}


def test_an_event_without_organization_counts_nothing_and_breaks_nothing(stack):
    events = Events(stack)
    org_id = new_id()
    events.publish("campaigns", "run_progress", {"run_id": new_id(), "channel": "email",
                                                 "targeted": 9, "is_test": False})
    events.publish("campaigns", "run_progress", {"org_id": org_id, "run_id": new_id(),
                                                 "channel": "email", "targeted": 2, "is_test": False})
    with stack.rpc() as rpc:
        totals = wait_for(lambda: rpc.reporting.analytics({"org_id": org_id}, {})["totals"],
                          dict(NOTHING, targeted=2))
    assert totals == dict(NOTHING, targeted=2)


def test_replies_outside_any_campaign_add_up_under_no_campaign(stack):
    events = Events(stack)
    org_id = new_id()
    for answers in (new_id(), new_id(), None):
        # Two answer one-off messages of ours; the third answers nothing we sent: no reply.
        events.publish("messaging", "reply_received", {
            "org_id": org_id, "communication_id": new_id(), "thread_id": new_id(),
            "contact_id": new_id(), "campaign_id": None, "run_id": None, "channel": "email",
            "is_test": False, "automatic": False, "in_reply_to_communication_id": answers})
    with stack.rpc() as rpc:
        fetch = lambda: rpc.reporting.analytics({"org_id": org_id}, {})  # noqa: E731
        wait_for(lambda: fetch()["totals"], dict(NOTHING, replied=2))
        answer = fetch()
    assert answer["totals"] == dict(NOTHING, replied=2)
    assert answer["by_campaign"] == [dict(NOTHING, replied=2, campaign_id=None)]
    with stack.db("reporting") as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM metric_counts WHERE org_id = %s", (org_id,))
        assert cur.fetchone()[0] == 1  # one counter row, incremented twice


def test_approved_drafts_are_counted_once_per_batch_even_when_redelivered(stack):
    # The messaging service consumes drafts_approved too and really tries to send these drafts
    # (this organization has no email provider); only `approved` is reporting's own count here.
    events = Events(stack)
    org_id, run_id, campaign_id = new_id(), new_id(), new_id()

    def batch(n):
        return {"org_id": org_id, "run_id": run_id, "campaign_id": campaign_id, "channel": "email",
                "is_test": False, "drafts": [
                    {"draft_id": new_id(), "contact_id": new_id(), "to_address": f"p{i}@example.com",
                     "to_name": f"Person {i}", "subject": "A quick idea", "body": "Hi"}
                    for i in range(n)]}

    first = events.publish("campaigns", "drafts_approved", batch(3))
    events.publish("campaigns", "drafts_approved", batch(2))
    events.publish("campaigns", "drafts_approved", batch(3), event_id=first)
    with stack.rpc() as rpc:
        approved = wait_for(
            lambda: rpc.reporting.analytics({"org_id": org_id}, {"run_id": run_id})["totals"]["approved"], 5)
    assert approved == 5


def test_a_resumed_run_queued_again_still_counts_as_one_run(stack):
    # campaigns re-emits run_queued (a new event) when it resumes a stalled run.
    events = Events(stack)
    org_id, run_id = new_id(), new_id()
    queued = {"org_id": org_id, "run_id": run_id, "campaign_id": new_id(), "channel": "email",
              "run_type": "live"}
    events.publish("campaigns", "run_queued", queued)
    events.publish("campaigns", "run_queued", queued)
    events.publish("campaigns", "run_progress", dict(queued, is_test=False, targeted=3, drafted=3))
    with stack.rpc() as rpc:
        totals = wait_for(lambda: rpc.reporting.analytics({"org_id": org_id}, {})["totals"],
                          dict(NOTHING, runs=1, targeted=3, drafted=3))
    assert totals == dict(NOTHING, runs=1, targeted=3, drafted=3)


def test_a_malformed_event_is_dropped_and_later_events_still_count(stack):
    events = Events(stack)
    org_id, run_id = new_id(), new_id()
    events.publish("campaigns", "run_progress", {"org_id": org_id, "run_id": run_id,
                                                 "channel": "email", "targeted": "many"})
    events.publish("campaigns", "run_progress", {"org_id": org_id, "run_id": run_id,
                                                 "channel": "email", "targeted": 4})
    with stack.rpc() as rpc:
        totals = wait_for(lambda: rpc.reporting.analytics({"org_id": org_id}, {})["totals"],
                          dict(NOTHING, targeted=4))
    assert totals == dict(NOTHING, targeted=4)
