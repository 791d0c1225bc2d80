"""The builtin reviewer checks a message against its channel's rules and explains every flag."""
from services.campaigns.agents import reviewer

AGENT = {"name": "Starter reviewer", "provider": "builtin", "instructions": ""}


def review(channel, **content):
    return reviewer.review(AGENT, channel, content)


def test_a_clean_email_is_approved():
    assert review("email", subject="Hello Ada", body="Hi Ada,\n\nShall we talk?") == \
        {"verdict": "approve", "reasons": []}


def test_an_email_without_subject_is_flagged():
    assert review("email", subject=" ", body="Hi") == \
        {"verdict": "flag", "reasons": ["subject is missing"]}


def test_an_empty_body_is_flagged():
    assert "body is empty" in review("email", subject="Hi", body="")["reasons"]


def test_unresolved_placeholders_are_flagged_with_their_names():
    result = review("email", subject="Hi {{first_name}}", body="About {{custom.company}}")
    assert result["verdict"] == "flag"
    assert result["reasons"] == ["unresolved placeholder in subject: {{first_name}}",
                                 "unresolved placeholder in body: {{custom.company}}"]


def test_sms_without_opt_out_wording_is_flagged():
    result = review("sms", body="Hi Ada, Larkspur here. Fancy a pilot?")
    assert result["reasons"] == ["SMS has no opt-out wording (for example 'Reply STOP to opt out')"]


def test_sms_longer_than_two_segments_is_flagged():
    body = ("word " * 70).strip() + " Reply STOP to opt out."
    encoding, segments = reviewer.sms_segments(body)
    assert (encoding, segments) == ("GSM-7", 3)
    assert review("sms", body=body)["reasons"] == [
        f"SMS is 3 segments (GSM-7, {len(body)} characters; max 2)"]


def test_sms_segments_follow_gsm7_and_ucs2_limits():
    assert reviewer.sms_segments("a" * 160) == ("GSM-7", 1)
    assert reviewer.sms_segments("a" * 161) == ("GSM-7", 2)
    assert reviewer.sms_segments("€" * 80) == ("GSM-7", 1)  # extension chars cost two septets
    assert reviewer.sms_segments("😀" + "a" * 69) == ("UCS-2", 2)
    assert reviewer.sms_segments("é" * 70) == ("GSM-7", 1)
    assert reviewer.sms_segments("ł" * 70) == ("UCS-2", 1)


def test_banned_phrases_are_flagged_including_the_reviewers_own():
    agent = dict(AGENT, instructions="Banned: free lunch, synergy")
    result = reviewer.review(agent, "email", {"subject": "Act now", "body": "Synergy and a free lunch!"})
    assert result["reasons"] == ['banned phrase: "act now"', 'banned phrase: "free lunch"',
                                 'banned phrase: "synergy"']


def test_insecure_links_are_flagged():
    result = review("email", subject="Hi", body="See http://example.org/pilot and https://ok.example")
    assert result["reasons"] == ["insecure link (not https): http://example.org/pilot"]
