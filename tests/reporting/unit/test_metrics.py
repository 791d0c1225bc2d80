"""What each event counts, and how counters add up into an analytics answer (no broker, no DB)."""
import datetime
import uuid

from services.reporting import metrics

ORG = str(uuid.uuid4())
RUN = str(uuid.uuid4())
CAMPAIGN = str(uuid.uuid4())


def by_metric(counts):
    return {c.metric: c.n for c in counts}


def test_run_progress_counts_targeted_skipped_and_drafted_for_its_run():
    counts = metrics.counts_for("campaigns.run_progress", {
        "org_id": ORG, "run_id": RUN, "campaign_id": CAMPAIGN, "channel": "email",
        "is_test": False, "targeted": 30, "skipped": 4, "drafted": 26})
    assert by_metric(counts) == {"targeted": 30, "skipped": 4, "drafted": 26}
    assert {(c.run_id, c.campaign_id, c.channel, c.is_test) for c in counts} == {
        (RUN, CAMPAIGN, "email", False)}


def test_approved_and_rejected_drafts_are_counted_by_batch_size():
    approved = metrics.counts_for("campaigns.drafts_approved", {
        "run_id": RUN, "campaign_id": CAMPAIGN, "channel": "email", "is_test": False,
        "drafts": [{"draft_id": str(uuid.uuid4())} for _ in range(3)]})
    rejected = metrics.counts_for("campaigns.drafts_rejected", {
        "run_id": RUN, "campaign_id": CAMPAIGN, "channel": "email", "is_test": False,
        "draft_ids": [str(uuid.uuid4())]})
    assert by_metric(approved) == {"approved": 3}
    assert by_metric(rejected) == {"rejected": 1}


def test_a_send_batch_counts_sent_and_failed_per_run():
    other_run = str(uuid.uuid4())
    results = [
        {"run_id": RUN, "campaign_id": CAMPAIGN, "status": "sent"},
        {"run_id": RUN, "campaign_id": CAMPAIGN, "status": "sent"},
        {"run_id": RUN, "campaign_id": CAMPAIGN, "status": "failed", "error": "550 no such user"},
        {"run_id": other_run, "campaign_id": CAMPAIGN, "status": "sent"},
    ]
    counts = metrics.counts_for("messaging.communications_sent",
                                {"channel": "email", "is_test": True, "results": results})
    assert sorted((c.run_id == RUN, c.metric, c.n, c.is_test) for c in counts) == [
        (False, "sent", 1, True), (True, "failed", 1, True), (True, "sent", 2, True)]


def test_run_completed_counts_the_completion_not_the_counts_again():
    counts = metrics.counts_for("campaigns.run_completed", {
        "run_id": RUN, "campaign_id": CAMPAIGN, "channel": "email", "is_test": False,
        "counts": {"targeted": 30, "sent": 26}})
    assert by_metric(counts) == {"runs_completed": 1}


def test_a_queued_test_run_counts_as_a_test_run():
    [count] = metrics.counts_for("campaigns.run_queued", {
        "run_id": RUN, "campaign_id": CAMPAIGN, "channel": "email", "run_type": "test"})
    assert (count.metric, count.n, count.is_test) == ("runs", 1, True)


def test_an_empty_progress_page_adds_nothing():
    assert metrics.counts_for("campaigns.run_progress", {
        "run_id": RUN, "channel": "email", "targeted": 0, "skipped": 0, "drafted": 0}) == []


def test_events_count_on_the_utc_day_they_occurred():
    assert metrics.event_day({"occurred_at": "2026-11-30T23:30:00-05:00"}) == datetime.date(2026, 12, 1)
    now = datetime.datetime(2026, 12, 3, 1, 0, tzinfo=datetime.timezone.utc)
    assert metrics.event_day({}, now=now) == datetime.date(2026, 12, 3)
    assert metrics.event_day({"occurred_at": "not a time"}, now=now) == datetime.date(2026, 12, 3)


def test_summary_zero_fills_every_metric_and_orders_groups():
    day = datetime.date(2026, 12, 1)
    rows = [
        {"grouping": "total", "channel": None, "campaign_id": None, "day": None, "metric": "sent", "count": 5},
        {"grouping": "channel", "channel": "email", "campaign_id": None, "day": None, "metric": "sent", "count": 5},
        {"grouping": "campaign", "channel": None, "campaign_id": None, "day": None, "metric": "sent", "count": 1},
        {"grouping": "campaign", "channel": None, "campaign_id": uuid.UUID(CAMPAIGN), "day": None, "metric": "sent", "count": 4},
        {"grouping": "day", "channel": None, "campaign_id": None, "day": day, "metric": "sent", "count": 5},
    ]
    answer = metrics.summarize(rows)
    assert answer["totals"] == dict(metrics.zero(), sent=5)
    assert answer["by_channel"] == [dict(metrics.zero(), channel="email", sent=5)]
    assert [c["campaign_id"] for c in answer["by_campaign"]] == [CAMPAIGN, None]
    assert answer["by_day"] == [dict(metrics.zero(), day="2026-12-01", sent=5)]
