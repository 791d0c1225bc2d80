"""The reviewer agent: checks a written message against the rules of its channel and returns a
verdict (approve | flag) with reasons. The rules always apply; an openai_compatible reviewer adds
the model's own reasons on top of them."""
import json
import re

from services.campaigns import templates
from services.campaigns.agents import providers

APPROVE, FLAG = "approve", "flag"

MAX_SMS_SEGMENTS = 2
MAX_SUBJECT = 150
OPT_OUT_SMS = re.compile(r"\b(stop|opt[ -]?out|unsubscribe)\b", re.I)
INSECURE_LINK = re.compile(r"\bhttp://[^\s<>\"]+", re.I)
# Phrases spam filters and regulators dislike; a reviewer's instructions can add more with a
# line like "Banned: phrase one, phrase two".
BANNED = ("act now", "100% free", "risk-free", "risk free", "guaranteed", "click here",
          "you are a winner", "you have been selected", "limited time offer", "cash bonus",
          "no obligation", "buy now")
BANNED_LINE = re.compile(r"^\s*(banned|avoid)(?: phrases)?\s*:\s*(.+)$", re.I | re.M)

# GSM 03.38 basic set; the extension set costs two septets each. Anything else forces UCS-2.
GSM_BASIC = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
                "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM_EXTENDED = set("^{}\\[~]|€\f")


def sms_segments(text):
    """(encoding, segments): GSM-7 160 chars in one part, 153 per part when split; UCS-2 70/67."""
    if all(c in GSM_BASIC or c in GSM_EXTENDED for c in text):
        units = sum(2 if c in GSM_EXTENDED else 1 for c in text)
        single, multi, encoding = 160, 153, "GSM-7"
    else:
        units = sum(2 if ord(c) > 0xFFFF else 1 for c in text)
        single, multi, encoding = 70, 67, "UCS-2"
    if units <= single:
        return encoding, 1 if units else 0
    return encoding, -(-units // multi)


def banned_phrases(agent):
    extra = []
    for match in BANNED_LINE.finditer(agent.get("instructions") or ""):
        extra += [p.strip().strip('"\'').lower() for p in match.group(2).split(",") if p.strip()]
    return tuple(dict.fromkeys(BANNED + tuple(extra)))


def rules(agent, channel, content):
    """The reasons this message should not go out as it is; empty when it may."""
    reasons = []
    subject, body = content.get("subject") or "", content.get("body") or ""
    if not body.strip():
        reasons.append("body is empty")
    for field in ("subject", "preheader", "body"):
        left = templates.placeholders(content.get(field))
        if left:
            reasons.append(f"unresolved placeholder in {field}: "
                           + ", ".join("{{%s}}" % p for p in dict.fromkeys(left)))
    if channel == "email":
        if not subject.strip():
            reasons.append("subject is missing")
        elif len(subject) > MAX_SUBJECT:
            reasons.append(f"subject is {len(subject)} characters (max {MAX_SUBJECT})")
    if channel == "sms" and body.strip():
        encoding, segments = sms_segments(body)
        if segments > MAX_SMS_SEGMENTS:
            reasons.append(f"SMS is {segments} segments ({encoding}, {len(body)} characters; "
                           f"max {MAX_SMS_SEGMENTS})")
        if not OPT_OUT_SMS.search(body):
            reasons.append("SMS has no opt-out wording (for example 'Reply STOP to opt out')")
    text = f"{subject}\n{content.get('preheader') or ''}\n{body}".lower()
    for phrase in banned_phrases(agent):
        if re.search(r"(?<!\w)" + re.escape(phrase) + r"(?!\w)", text):
            reasons.append(f"banned phrase: \"{phrase}\"")
    for link in INSECURE_LINK.findall(body):
        reasons.append(f"insecure link (not https): {link}")
    return reasons


def review(agent, channel, content, brief=None, chat=None):
    """{verdict, reasons}. AgentFailure when an openai_compatible reviewer cannot answer."""
    reasons = rules(agent, channel, content)
    if agent.get("provider", "builtin") != "builtin":
        client = chat or providers.client_for(agent)
        reasons += model_reasons(client.complete(messages(agent, channel, content, brief)))
    return {"verdict": FLAG if reasons else APPROVE, "reasons": reasons}


def messages(agent, channel, content, brief=None):
    system = "\n".join(x for x in [
        f"You are {agent.get('name') or 'a reviewer'}, reviewing one outreach {channel} message "
        "before a person approves it.",
        agent.get("instructions") or "",
        "Answer with a JSON object {\"verdict\": \"approve\" | \"flag\", \"reasons\": [..]}.",
    ] if x)
    goal = ((brief or {}).get("goal") or {})
    user = {"goal": goal.get("name"), "message": {k: content.get(k) for k in ("subject", "preheader", "body")}}
    return [{"role": "system", "content": system},
            {"role": "user", "content": json.dumps(user, ensure_ascii=False)}]


def model_reasons(text):
    cleaned = re.sub(r"^```(?:json)?\s*|\s*```$", "", text.strip())
    try:
        data = json.loads(cleaned)
    except ValueError:
        # Not JSON: a plain "approve" is approval, anything else is a reason to look.
        return [] if cleaned.lower().startswith("approve") else [f"reviewer model: {cleaned[:300]}"]
    if not isinstance(data, dict):
        return [f"reviewer model: {cleaned[:300]}"]
    reasons = [str(r) for r in (data.get("reasons") or []) if str(r).strip()]
    if str(data.get("verdict", "")).lower() == FLAG and not reasons:
        reasons = ["reviewer model flagged the message"]
    if str(data.get("verdict", "")).lower() == APPROVE:
        return []
    return [f"reviewer model: {r}" for r in reasons]
