"""The writer agent: from a brief (organization, goal, instructions, template, contact) to a message
for the campaign's channel. The builtin provider composes it deterministically; an
openai_compatible provider is asked for the same thing over chat completions.

A brief is a plain dict: {channel, organization: {name, description}, goal: {name, description},
instructions, template: {subject, preheader, body} | None, contact: {name, first_name, email,
phone, custom}}. The result is {subject, preheader, body}."""
import json
import re

from services.campaigns import templates
from services.campaigns.agents import AgentFailure, providers
from services.campaigns.agents.reviewer import OPT_OUT_SMS, sms_segments

SMS_LIMIT = 160
GREETING = re.compile(r"^\s*(hi|hello|hey|dear|good (morning|afternoon|evening))\b", re.I)
SIGN_OFF = re.compile(r"^\s*(best( wishes)?|(kind |warm |best )?regards|thanks|thank you|cheers|sincerely|"
                      r"yours sincerely)\s*,?\s*$", re.I | re.M)


def write(agent, brief, chat=None):
    """{subject, preheader, body} for one recipient; AgentFailure when the provider fails."""
    if agent.get("provider", "builtin") == "builtin":
        return compose(agent, brief)
    client = chat or providers.client_for(agent)
    return parse_reply(client.complete(messages(agent, brief)), brief)


# --- builtin ---------------------------------------------------------------------------------

def tone(agent, brief):
    """Voice and instructions steer the builtin writer through plain words: formal, brief."""
    words = " ".join([agent.get("voice") or "", agent.get("instructions") or "",
                      brief.get("instructions") or ""]).lower()
    return {
        "formal": bool(re.search(r"\bformal\b", words)),
        "concise": bool(re.search(r"\b(brief|short|concise)\b", words)),
    }


def compose(agent, brief):
    channel = brief["channel"]
    org = brief.get("organization") or {}
    values = templates.values_for(brief.get("contact") or {}, org)
    style = tone(agent, brief)
    if channel == "email":
        return _email(brief, org, values, style)
    if channel == "sms":
        return _sms(brief, org, values)
    return _phone(brief, org, values)


def _first_sentence(text):
    text = " ".join((text or "").split())
    match = re.match(r"(.+?[.!?])(\s|$)", text)
    return match.group(1) if match else text


def _sentence(text):
    text = " ".join((text or "").split())
    return text if not text or text[-1] in ".!?" else text + "."


def _email(brief, org, values, style):
    template = brief.get("template")
    goal = brief.get("goal") or {}
    org_name = org.get("name") or ""
    first = values.get("first_name")
    greeting = (f"Dear {first}," if style["formal"] else f"Hi {first},") if first else \
        ("Dear friend," if style["formal"] else "Hello,")
    if template:
        subject = templates.render(template.get("subject"), values)
        preheader = templates.render(template.get("preheader"), values)
        core = templates.render(template.get("body"), values).strip()
    else:
        subject = goal.get("name") or (f"A note from {org_name}" if org_name else "")
        preheader = ""
        core = _sentence(goal.get("description") or goal.get("name"))
    parts = []
    if not GREETING.match(core):
        parts.append(greeting)
    description = _first_sentence(org.get("description"))
    if description and not style["concise"] and org_name and org_name not in core:
        parts.append(f"I'm writing on behalf of {org_name}. {_sentence(description)}")
    parts.append(core)
    if not SIGN_OFF.search(core):
        parts.append(("Kind regards,\n" if style["formal"] else "Best,\n") + (org_name or "The team"))
    return {"subject": subject.strip(), "preheader": preheader.strip(),
            "body": "\n\n".join(p for p in parts if p)}


def _sms(brief, org, values):
    template = brief.get("template")
    goal = brief.get("goal") or {}
    first, org_name = values.get("first_name"), org.get("name") or ""
    head = " ".join(x for x in [f"Hi {first}," if first else "Hi,",
                                f"{org_name} here." if org_name else ""] if x)
    core = templates.render(template.get("body"), values).strip() if template else \
        _sentence(goal.get("description") or goal.get("name"))
    if OPT_OUT_SMS.search(core):
        tail = ""
    else:
        tail = "Reply STOP to opt out."
    text = " ".join(x for x in (head, core, tail) if x)
    # Keep to one segment where the words allow: shorten the core, never the opt-out.
    words = core.split()
    while sms_segments(text)[1] > 1 and len(words) > 3:
        words = words[:-1]
        text = " ".join(x for x in (head, " ".join(words).rstrip(",.;:") + "...", tail) if x)
    return {"subject": "", "preheader": "", "body": text}


def _phone(brief, org, values):
    goal = brief.get("goal") or {}
    name, org_name = values.get("name") or "there", org.get("name") or "our team"
    lines = [
        f"Hello, may I speak with {name}?",
        f"This is a call from {org_name}. {_sentence(_first_sentence(org.get('description')))}".strip(),
        _sentence(goal.get("description") or goal.get("name")),
        "Is this a good time to talk for two minutes?",
        "If not, when would suit you better? Thank you for your time.",
    ]
    return {"subject": "", "preheader": "", "body": "\n".join(l for l in lines if l.strip())}


# --- openai_compatible -----------------------------------------------------------------------

def messages(agent, brief):
    channel = brief["channel"]
    org = brief.get("organization") or {}
    goal = brief.get("goal") or {}
    rules = {
        "email": "Write one email. Answer with a JSON object {\"subject\", \"preheader\", \"body\"}.",
        "sms": "Write one SMS of at most 160 characters ending with 'Reply STOP to opt out.'. "
               "Answer with a JSON object {\"body\"}.",
        "phone": "Write a short phone call script. Answer with a JSON object {\"body\"}.",
    }[channel]
    system = "\n".join(x for x in [
        f"You are {agent.get('name') or 'a writer'}"
        + (f", {agent['title']}" if agent.get("title") else "") + ", writing outreach messages.",
        f"Voice: {agent['voice']}" if agent.get("voice") else "",
        agent.get("instructions") or "",
        rules,
        "Never invent facts; never leave placeholders like {{first_name}} in the text.",
    ] if x)
    template = brief.get("template") or {}
    user = {
        "organization": {"name": org.get("name"), "description": org.get("description")},
        "goal": {"name": goal.get("name"), "description": goal.get("description")},
        "campaign_instructions": brief.get("instructions") or "",
        "template": {k: templates.render(template.get(k), templates.values_for(
            brief.get("contact") or {}, org)) for k in ("subject", "preheader", "body")} if template else None,
        "recipient": {k: (brief.get("contact") or {}).get(k)
                      for k in ("name", "first_name", "email", "phone", "custom")},
    }
    return [{"role": "system", "content": system},
            {"role": "user", "content": json.dumps(user, ensure_ascii=False)}]


def parse_reply(text, brief):
    """Accept a JSON object (optionally fenced) or 'Subject: ...' followed by the body."""
    cleaned = re.sub(r"^```(?:json)?\s*|\s*```$", "", text.strip())
    try:
        data = json.loads(cleaned)
    except ValueError:
        data = None
    if isinstance(data, dict):
        out = {k: str(data.get(k) or "").strip() for k in ("subject", "preheader", "body")}
    else:
        subject = ""
        match = re.match(r"\s*subject:\s*(.+?)\n(.*)", cleaned, re.I | re.S)
        if match:
            subject, cleaned = match.group(1), match.group(2)
        out = {"subject": subject.strip(), "preheader": "", "body": cleaned.strip()}
    if brief["channel"] != "email":
        out["subject"] = out["preheader"] = ""
    if not out["body"]:
        raise AgentFailure("the model answered without a message body")
    return out
