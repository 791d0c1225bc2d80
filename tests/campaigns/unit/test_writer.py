"""The builtin writer composes a channel-appropriate message from the brief, deterministically."""
from services.campaigns.agents import writer
from services.campaigns.agents.reviewer import sms_segments

AGENT = {"name": "Starter writer", "provider": "builtin", "voice": "", "instructions": ""}
ORG = {"name": "Larkspur Events", "description": "We run large charity galas. Since 2009."}
GOAL = {"name": "Book a pilot", "description": "Invite the contact to a free pilot of our gala planning service"}
CONTACT = {"name": "Olivia Brandt", "email": "olivia.brandt@example.com", "phone": "+12025550143",
           "custom": {"company": "Brandt & Co"}}
TEMPLATE = {"subject": "{{first_name}}, a pilot for {{custom.company}}?", "preheader": "From {{organization}}",
            "body": "Would {{custom.company}} like to try our planning service for your next gala?"}


def brief(channel="email", template=TEMPLATE, instructions="", contact=CONTACT):
    return {"channel": channel, "organization": ORG, "goal": GOAL, "instructions": instructions,
            "template": template, "contact": contact}


def test_email_fills_the_template_and_greets_the_contact_by_first_name():
    out = writer.write(AGENT, brief())
    assert out["subject"] == "Olivia, a pilot for Brandt & Co?"
    assert out["preheader"] == "From Larkspur Events"
    assert out["body"].startswith("Hi Olivia,\n\n")
    assert "Would Brandt & Co like to try our planning service for your next gala?" in out["body"]
    assert out["body"].endswith("Best,\nLarkspur Events")


def test_email_introduces_the_organization_from_its_description():
    out = writer.write(AGENT, brief())
    assert "I'm writing on behalf of Larkspur Events. We run large charity galas." in out["body"]
    assert "Since 2009" not in out["body"]


def test_formal_and_brief_instructions_change_the_builtin_writing():
    out = writer.write(AGENT, brief(instructions="Formal tone, keep it brief."))
    assert out["body"].startswith("Dear Olivia,")
    assert "on behalf of" not in out["body"]
    assert out["body"].endswith("Kind regards,\nLarkspur Events")


def test_email_without_template_writes_the_goal():
    out = writer.write(AGENT, brief(template=None))
    assert out["subject"] == "Book a pilot"
    assert "Invite the contact to a free pilot of our gala planning service." in out["body"]


def test_the_same_brief_always_gives_the_same_message():
    assert writer.write(AGENT, brief()) == writer.write(AGENT, brief())


def test_sms_is_one_segment_with_opt_out_wording():
    long_goal = dict(GOAL, description="Invite the contact to a free pilot of our gala planning "
                                       "service, including seating charts, vendor coordination, "
                                       "day-of timelines and a debrief with our senior planners")
    out = writer.write(AGENT, dict(brief("sms", template=None), goal=long_goal))
    assert out["subject"] == ""
    assert out["body"].startswith("Hi Olivia, Larkspur Events here.")
    assert out["body"].endswith("Reply STOP to opt out.")
    assert sms_segments(out["body"]) == ("GSM-7", 1)


def test_phone_script_names_the_contact_and_the_goal():
    out = writer.write(AGENT, brief("phone", template=None))
    lines = out["body"].split("\n")
    assert lines[0] == "Hello, may I speak with Olivia Brandt?"
    assert "Invite the contact to a free pilot of our gala planning service." in lines


def test_a_contact_without_a_name_gets_a_neutral_greeting():
    out = writer.write(AGENT, brief(template=None, contact={"email": "x@example.com"}))
    assert out["body"].startswith("Hello,\n\n")
