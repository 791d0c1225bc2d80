"""Run and draft statuses move only along their tables' transitions."""
from services.campaigns import drafts, runs


def test_a_run_goes_queued_running_then_one_final_status():
    assert runs.may("queued", "running")
    assert runs.may("running", "completed")
    assert runs.may("running", "failed")
    assert runs.may("queued", "cancelled") and runs.may("running", "cancelled")
    assert not runs.may("queued", "completed")
    for final in runs.FINAL:
        assert runs.TRANSITIONS[final] == set()


def test_a_rejected_draft_can_never_be_approved_or_sent():
    assert drafts.may("pending_approval", "rejected")
    assert not drafts.may("rejected", "approved")
    assert not drafts.may("rejected", "sending")
    assert drafts.allowed_actions("rejected") == []


def test_only_a_failed_draft_can_be_retried():
    assert drafts.allowed_actions("failed") == ["retry"]
    assert drafts.allowed_actions("pending_approval") == ["approve", "reject"]
    assert [s for s in drafts.STATUSES if "retry" in drafts.allowed_actions(s)] == ["failed"]


def test_every_draft_status_has_a_class_the_product_shows():
    assert {drafts.CLASSES[s] for s in drafts.STATUSES} == {"processing", "awaiting_action", "final"}
    assert drafts.CLASSES["pending_approval"] == "awaiting_action"
    assert set(drafts.FINAL) == {s for s in drafts.STATUSES if drafts.CLASSES[s] == "final"}


def test_a_test_run_audience_is_the_test_recipients_only():
    org = {"test_recipients": [{"email": "Owner@Example.org", "name": "Olive Owner"}]}
    recipients, skips = runs.test_audience(org, "email")
    assert [(r["recipient_key"], r["to_address"], r["to_name"]) for r in recipients] == [
        ("test:owner@example.org", "Owner@Example.org", "Olive Owner")]
    assert skips == []
    recipients, skips = runs.test_audience(org, "sms")
    assert recipients == [] and skips[0]["reason"] == "no_phone"


def test_contacts_without_the_channels_address_are_skipped_with_the_reason():
    page = [
        {"id": "c1", "name": "Ada", "email": "ada@example.org", "skip_reason": None},
        {"id": "c2", "name": "Bob", "email": None, "skip_reason": None},
        {"id": "c3", "name": "Cy", "email": None, "skip_reason": "unsubscribed"},
    ]
    recipients, skips = runs.split_page(page, "email")
    assert [r["contact_id"] for r in recipients] == ["c1"]
    assert [(s["contact_id"], s["reason"]) for s in skips] == [("c2", "no_email"), ("c3", "unsubscribed")]


def test_a_draft_that_failed_while_sending_is_not_offered_a_retry():
    assert drafts.actions_for({"status": "failed", "approved_at": None}) == ["retry"]
    assert drafts.actions_for({"status": "failed", "approved_at": "2026-12-01T10:00:00Z"}) == []
