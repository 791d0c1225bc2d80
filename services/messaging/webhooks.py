"""Provider webhooks: find the organization a request belongs to (the key in its URL, else the
payload: our Twilio number or Messaging Service, the message a SendGrid/Mailgun event is about,
the reply token of an inbound mail), verify it with that organization's secret, then record what
it says exactly once (dedupe on the provider's own ids).

Twilio: inbound SMS (replies, STOP/START/HELP keywords), SMS status callbacks, call status
callbacks. SendGrid: Event Webhook (ECDSA) and Inbound Parse (basic auth or the URL key).
Mailgun: event webhooks (HMAC, one-time token, clock check). Postmark: inbound (basic auth)."""
import base64
import binascii
import datetime
import email
import email.message
import email.policy
import email.utils
import hashlib
import json
import re
import uuid
from urllib.parse import parse_qsl

from services.common.errors import Forbidden, Invalid, NotFound
from services.messaging import communications, inbound, inbound_email, providers, reply_text
from services.messaging import sanitize, signatures, store

UTC = datetime.timezone.utc
MAX_BODY = 30 * 1024 * 1024

KINDS = {
    ("twilio", "sms_inbound"), ("twilio", "sms_status"), ("twilio", "voice_status"),
    ("sendgrid", "events"), ("sendgrid", "inbound"), ("mailgun", "events"),
    ("postmark", "inbound"),
}

# Twilio's default opt-out handling (Advanced Opt-Out keywords); the whole message, any case.
OPT_OUT_KEYWORDS = {"STOP", "STOPALL", "STOP ALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT",
                    "OPTOUT", "OPT OUT", "OPT-OUT", "REVOKE"}
OPT_IN_KEYWORDS = {"START", "YES", "UNSTOP"}
HELP_KEYWORDS = {"HELP", "INFO"}

TWILIO_ERRORS = {
    "30001": "queue overflow", "30002": "account suspended",
    "30003": "unreachable destination handset", "30004": "message blocked",
    "30005": "unknown destination handset", "30006": "landline or unreachable carrier",
    "30007": "carrier violation (filtered)", "30008": "unknown error",
    "21610": "recipient unsubscribed (STOP)",
}
# Provider status words in the order a message goes through them; a late callback never moves
# the provider status backwards.
SMS_RANK = {"accepted": 0, "scheduled": 0, "queued": 1, "sending": 2, "sent": 3,
            "delivered": 4, "undelivered": 4, "failed": 4, "read": 5, "canceled": 4}
EMAIL_RANK = {"processed": 1, "accepted": 1, "deferred": 2, "delivered": 3, "bounce": 4,
              "dropped": 4, "failed": 4, "open": 5, "opened": 5, "click": 6, "clicked": 6}


class Refused(Forbidden):
    """A request we cannot attribute or verify. Says nothing about why (no oracle)."""

    def __init__(self, message="webhook refused: signature or credentials do not verify"):
        super().__init__(message)


# -- entry point ----------------------------------------------------------------------------

def handle(db, req, secret_key, find_contact, now=None):
    """Process one webhook request. `req`: {provider, kind, key (or None), url, headers
    (lower-case names), body_b64}. `find_contact(org_id, email=..., phone=...)` -> id or None.
    Returns a JSON-safe summary; raises Refused (403), NotFound (unknown key), Invalid (400)."""
    provider, kind = req.get("provider"), req.get("kind")
    if (provider, kind) not in KINDS:
        raise NotFound("no such webhook")
    try:
        body = base64.b64decode(req.get("body_b64") or "", validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise Invalid("invalid input", errors={"body": ["not base64"]})
    if len(body) > MAX_BODY:
        raise Invalid("invalid input", errors={"body": ["too large"]})
    headers = {str(k).lower(): str(v) for k, v in (req.get("headers") or {}).items()}
    prepared = PREPARE[(provider, kind)](body, headers)
    key = req.get("key")
    with db.transaction() as tx:
        if key:
            row = store.settings_by_inbound_key(tx, key)
            if row is None:
                raise NotFound("unknown webhook address")
            candidates = [str(row["org_id"])]
        else:
            candidates = CANDIDATES[(provider, kind)](tx, prepared)
        org_id = None
        for cand in candidates:
            srow = store.provider_settings(tx, cand, provider)
            secrets = providers.secrets_of(srow, secret_key)
            if VERIFY[(provider, kind)](srow, secrets, req, body, headers, prepared, bool(key)):
                org_id, settings_row = cand, srow
                break
    if org_id is None:
        raise Refused()
    return PROCESS[(provider, kind)](db, org_id, settings_row, prepared, find_contact,
                                     now=now)


# -- Twilio ---------------------------------------------------------------------------------

def _prepare_twilio(body, headers):
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError):
        raise Refused()
    params = {}
    for name, value in pairs:
        params.setdefault(name, value)
    # `pairs` stay exactly as signed (the signature covers them); `params` are what is stored.
    return {"pairs": pairs, "params": sanitize.deep(params)}


def _twilio_candidates(tx, prepared):
    p = prepared["params"]
    phones = [v for v in (p.get("To"), p.get("From"), p.get("Called"), p.get("Caller")) if v]
    services = [p["MessagingServiceSid"]] if p.get("MessagingServiceSid") else []
    accounts = [p["AccountSid"]] if p.get("AccountSid") else []
    return [str(r["org_id"]) for r in store.twilio_candidates(tx, phones, services, accounts)]


def _verify_twilio(srow, secrets, req, body, headers, prepared, keyed):
    if srow is None or not secrets.get("auth_token"):
        return False
    account = (srow["config"] or {}).get("account_sid")
    sent_account = prepared["params"].get("AccountSid")
    if sent_account and account and sent_account != account:
        return False
    return signatures.twilio_valid(secrets["auth_token"], req.get("url") or "",
                                   prepared["pairs"], headers.get("x-twilio-signature"))


def keyword(text):
    word = re.sub(r"[\s.!]+$", "", (text or "").strip()).upper()
    word = re.sub(r"\s+", " ", word)
    if word in OPT_OUT_KEYWORDS:
        return "opt_out"
    if word in OPT_IN_KEYWORDS:
        return "opt_in"
    if word in HELP_KEYWORDS:
        return "help"
    return None


def _process_sms_inbound(db, org_id, srow, prepared, find_contact, now=None):
    p = prepared["params"]
    sid = p.get("MessageSid") or p.get("SmsMessageSid") or p.get("SmsSid")
    sender, ours = p.get("From"), p.get("To")
    if not sid or not sender or not ours:
        raise Invalid("invalid input", errors={"body": ["MessageSid, From and To are required"]})
    dedupe = f"twilio:sms:{sid}"
    with db.transaction() as tx:
        seen = store.provider_event(tx, org_id, dedupe)
        if seen:
            return _duplicate(tx, org_id, seen)
        original = store.latest_outbound_sms(tx, org_id, sender, ours)
    contact_id = original["contact_id"] if original else None
    if contact_id is None:
        contact_id = find_contact(org_id, phone=sender)
    for _ in range(2):
        try:
            with db.transaction() as tx:
                return _record_sms(tx, org_id, p, sid, dedupe, contact_id)
        except inbound.DuplicateRace:
            continue
    raise inbound.DuplicateRace()


def _record_sms(tx, org_id, p, sid, dedupe, contact_id):
    seen = store.provider_event(tx, org_id, dedupe)
    if seen:
        return _duplicate(tx, org_id, seen)
    sender, ours, text = p.get("From"), p.get("To"), p.get("Body") or ""
    original = store.latest_outbound_sms(tx, org_id, sender, ours)
    previous = original or store.latest_inbound_sms(tx, org_id, sender, ours)
    contact_id = (previous["contact_id"] if previous and previous["contact_id"] else contact_id)
    if previous is not None:
        thread_id = previous["thread_id"]
        campaign_id, run_id, is_test = (previous["campaign_id"], previous["run_id"],
                                        previous["is_test"])
    else:
        campaign_id = run_id = None
        is_test = False
        thread_id = store.insert_thread(tx, org_id, "sms", contact_id, None)
    media = []
    for i in range(_int(p.get("NumMedia")) or 0):
        if p.get(f"MediaUrl{i}"):
            media.append({"filename": p[f"MediaUrl{i}"].rsplit("/", 1)[-1],
                          "content_type": p.get(f"MediaContentType{i}") or "application/octet-stream",
                          "size": None, "url": p[f"MediaUrl{i}"]})
    kind = keyword(text)
    row = store.insert_communication(tx, {
        "org_id": org_id, "thread_id": thread_id, "direction": "inbound", "channel": "sms",
        "status": "received", "is_test": is_test, "automatic": False,
        "campaign_id": campaign_id, "run_id": run_id, "contact_id": contact_id,
        "from_address": sender, "to_address": ours, "body": text,
        "stripped_text": reply_text.normalize(text), "attachments": media,
        "provider": "twilio", "provider_message_id": sid,
        "provider_status": p.get("SmsStatus") or "received",
    })
    if not store.add_provider_event(tx, org_id, dedupe, "twilio", "sms_inbound", row["id"],
                                    {"keyword": kind, "segments": p.get("NumSegments")}):
        raise inbound.DuplicateRace()
    store.touch_threads(tx, org_id, [thread_id])
    base = {"org_id": org_id, "channel": "sms", "identifier": sender,
            "contact_id": _s(contact_id), "communication_id": str(row["id"])}
    if kind == "opt_out":
        # Twilio itself confirms STOP to the handset; we send nothing back.
        tx.emit("opt_out_requested", dict(base, source="user_action", unsubscribed=True,
                                          keyword=text.strip().upper()))
    elif kind == "opt_in":
        tx.emit("opt_out_requested", dict(base, source="user_action", unsubscribed=False,
                                          keyword=text.strip().upper()))
    elif kind is None:
        tx.emit("reply_received", {
            "org_id": org_id, "communication_id": str(row["id"]), "thread_id": str(thread_id),
            "contact_id": _s(contact_id), "campaign_id": _s(campaign_id), "run_id": _s(run_id),
            "channel": "sms", "is_test": is_test, "automatic": False,
            "in_reply_to_communication_id": _s(original["id"]) if original else None,
        })
    # HELP: recorded only; Twilio answers it and no sales reply is drafted.
    return {"kind": "keyword" if kind else "reply", "keyword": kind, "duplicate": False,
            "communication": communications.view(row)}


def parse_dlr_date(value):
    """Twilio's RawDlrDoneDate YYMMDDhhmm (UTC) -> datetime, or None."""
    try:
        return datetime.datetime.strptime(value or "", "%y%m%d%H%M").replace(tzinfo=UTC)
    except ValueError:
        return None


def _process_sms_status(db, org_id, srow, prepared, find_contact, now=None):
    p = prepared["params"]
    sid = p.get("MessageSid") or p.get("SmsSid")
    status = (p.get("MessageStatus") or p.get("SmsStatus") or "").lower()
    if not sid or not status:
        raise Invalid("invalid input", errors={"body": ["MessageSid and MessageStatus required"]})
    dedupe = f"twilio:sms-status:{sid}:{status}"
    with db.transaction() as tx:
        seen = store.provider_event(tx, org_id, dedupe)
        if seen:
            return _duplicate(tx, org_id, seen)
        comm = store.find_communication(tx, org_id, "provider_message_id", [sid])
        if comm is not None:
            comm = store.lock_communication(tx, org_id, comm["id"])
        code = p.get("ErrorCode") or None
        data = {"status": status, "error_code": code}
        if not store.add_provider_event(tx, org_id, dedupe, "twilio", f"sms_{status}",
                                        comm["id"] if comm else None, data):
            return _duplicate(tx, org_id, store.provider_event(tx, org_id, dedupe))
        if comm is None:
            # Possibly faster than our own commit of the sid: the sender applies it afterwards
            # (apply_early_sms_status).
            return {"kind": "status", "matched": False, "duplicate": False, "communication": None}
        _apply_sms_status(tx, org_id, comm, status, code,
                          parse_dlr_date(p.get("RawDlrDoneDate")) or _now(now))
        row = store.get_communication(tx, org_id, comm["id"])
    return {"kind": "status", "matched": True, "duplicate": False,
            "communication": communications.view(row)}


def _apply_sms_status(tx, org_id, comm, status, code, delivered_at):
    changes = {"provider": "twilio"}
    if SMS_RANK.get(status, 0) >= SMS_RANK.get(comm["provider_status"] or "", -1):
        changes["provider_status"] = status
    target = {"sent": "sent", "delivered": "delivered", "undelivered": "undelivered",
              "failed": "failed"}.get(status)
    if target and (target == comm["status"] or communications.may_move(comm["status"], target)):
        changes["status"] = target
    if status == "delivered":
        changes["delivered_at"] = delivered_at
    if code and status in ("undelivered", "failed"):
        changes["error_code"] = code
        changes["error"] = f"Twilio error {code}: {TWILIO_ERRORS.get(code, 'delivery failed')}"
    store.update_communication(tx, org_id, comm["id"], changes)


def apply_early_sms_status(tx, org_id, comm_id, sid):
    """Status callbacks that arrived before the sender committed the message's sid were recorded
    unmatched; attach them to the communication now, in the order a message goes through them."""
    keys = [f"twilio:sms-status:{sid}:{status}" for status in SMS_RANK]
    events = store.unmatched_provider_events(tx, org_id, keys)
    events.sort(key=lambda e: SMS_RANK.get((e["data"] or {}).get("status") or "", 0))
    for event in events:
        data = event["data"] or {}
        comm = store.lock_communication(tx, org_id, comm_id)
        _apply_sms_status(tx, org_id, comm, data.get("status") or "", data.get("error_code"),
                          event["received_at"])
        store.attach_provider_event(tx, org_id, event["dedupe_key"], comm_id)


def _process_voice_status(db, org_id, srow, prepared, find_contact, now=None):
    p = prepared["params"]
    sid, status = p.get("CallSid"), (p.get("CallStatus") or "").lower()
    if not sid or not status:
        raise Invalid("invalid input", errors={"body": ["CallSid and CallStatus required"]})
    dedupe = f"twilio:call:{sid}:{status}"
    with db.transaction() as tx:
        seen = store.provider_event(tx, org_id, dedupe)
        if seen:
            return _duplicate(tx, org_id, seen)
        comm = store.find_communication(tx, org_id, "provider_message_id", [sid])
        if comm is None:
            # A call placed by us may be found by the number pair too (no CallSid seeded).
            comm = None
        else:
            comm = store.lock_communication(tx, org_id, comm["id"])
        data = {"status": status, "call_duration": p.get("CallDuration"),
                "sip_response_code": p.get("SipResponseCode"),
                "recording_sid": p.get("RecordingSid")}
        if not store.add_provider_event(tx, org_id, dedupe, "twilio", f"call_{status}",
                                        comm["id"] if comm else None, data,
                                        _rfc2822(p.get("Timestamp"))):
            return _duplicate(tx, org_id, store.provider_event(tx, org_id, dedupe))
        if comm is None:
            return {"kind": "status", "matched": False, "duplicate": False, "communication": None}
        changes = {"provider": "twilio", "provider_status": status}
        final = status in ("completed", "no-answer", "busy", "failed", "canceled")
        if final:
            target = "completed" if status == "completed" else "missed"
            if status == "failed":
                target = "failed"
            if communications.may_move(comm["status"], target):
                changes["status"] = target
            changes["outcome"] = status
            # CallDuration is seconds connected; Duration is billed minutes.
            changes["duration_seconds"] = _int(p.get("CallDuration")) or 0
            if p.get("SipResponseCode") and status != "completed":
                changes["error_code"] = p["SipResponseCode"]
        if p.get("RecordingSid") or p.get("RecordingUrl"):
            changes["recording"] = {"sid": p.get("RecordingSid"), "url": p.get("RecordingUrl"),
                                    "duration_seconds": _int(p.get("RecordingDuration"))}
        store.update_communication(tx, org_id, comm["id"], changes)
        row = store.get_communication(tx, org_id, comm["id"])
    return {"kind": "status", "matched": True, "duplicate": False,
            "communication": communications.view(row)}


# -- SendGrid Event Webhook -----------------------------------------------------------------

def _prepare_sendgrid_events(body, headers):
    try:
        events = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Refused()
    if isinstance(events, dict):
        events = [events]
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise Refused()
    # The signature covers the raw body, already checked bytes; the parsed events are stored.
    return {"events": sanitize.deep(events)}


def _sg_refs(event):
    prefix = str(event.get("sg_message_id") or "").split(".", 1)[0] or None
    smtp_id = event.get("smtp-id") or None
    if smtp_id and not smtp_id.startswith("<"):
        smtp_id = f"<{smtp_id}>"
    comm_id = _uuid(event.get("communication_id"))
    return comm_id, prefix, smtp_id


def _sendgrid_candidates(tx, prepared):
    ids, prefixes, smtp_ids = set(), set(), set()
    for event in prepared["events"]:
        comm_id, prefix, smtp_id = _sg_refs(event)
        ids.update([comm_id] if comm_id else [])
        prefixes.update([prefix] if prefix else [])
        smtp_ids.update([smtp_id] if smtp_id else [])
    found = []
    for column, values in (("id", ids), ("provider_message_id", prefixes),
                           ("message_id", smtp_ids)):
        for org in store.orgs_with_communication(tx, "sendgrid", column, sorted(values)):
            if org not in found:
                found.append(org)
    return found


def _verify_sendgrid_events(srow, secrets, req, body, headers, prepared, keyed):
    key = (srow["config"] or {}).get("event_verification_key") if srow else None
    return signatures.sendgrid_valid(
        key, headers.get("x-twilio-email-event-webhook-timestamp"), body,
        headers.get("x-twilio-email-event-webhook-signature"))


def _process_sendgrid_events(db, org_id, srow, prepared, find_contact, now=None):
    results = []
    with db.transaction() as tx:
        for event in prepared["events"]:
            results.append(_sendgrid_event(tx, org_id, event, now))
    return {"kind": "events", "duplicate": all(r == "duplicate" for r in results),
            "processed": sum(1 for r in results if r != "duplicate"),
            "matched": sum(1 for r in results if r == "matched"), "results": results}


def _sendgrid_event(tx, org_id, event, now):
    kind = str(event.get("event") or "").lower()
    event_id = event.get("sg_event_id")
    if not kind:
        return "ignored"
    comm_id, prefix, smtp_id = _sg_refs(event)
    comm = None
    if comm_id:
        comm = store.find_communication(tx, org_id, "id", [comm_id])
    if comm is None and prefix:
        comm = store.find_communication(tx, org_id, "provider_message_id", [prefix])
    if comm is None and smtp_id:
        comm = store.find_communication(tx, org_id, "message_id", [smtp_id])
    if comm is not None:
        comm = store.lock_communication(tx, org_id, comm["id"])
    occurred = _from_unix(event.get("timestamp")) or _now(now)
    dedupe = "sendgrid:" + (event_id or f"{kind}:{prefix}:{event.get('email')}:{event.get('timestamp')}")
    data = {k: event.get(k) for k in ("event", "email", "reason", "status", "type",
                                      "bounce_classification", "url", "sg_machine_open",
                                      "useragent", "ip") if event.get(k) is not None}
    if not store.add_provider_event(tx, org_id, dedupe, "sendgrid", kind,
                                    comm["id"] if comm else None, data, occurred):
        return "duplicate"
    address = (event.get("email") or (comm["to_address"] if comm else "") or "").strip().lower()
    if kind in ("spamreport", "unsubscribe", "group_unsubscribe") and address:
        tx.emit("opt_out_requested", {
            "org_id": org_id, "channel": "email", "identifier": address, "source": "user_action",
            "unsubscribed": True, "reason": "spam_complaint" if kind == "spamreport" else kind,
            "contact_id": _s(comm["contact_id"]) if comm else None,
            "communication_id": _s(comm["id"]) if comm else None,
        })
    if comm is None:
        return "unmatched"
    changes = {"provider": "sendgrid"}
    if prefix and not comm["provider_message_id"]:
        changes["provider_message_id"] = prefix
    word = {"processed": "processed", "deferred": "deferred", "delivered": "delivered",
            "bounce": "bounce", "blocked": "bounce", "dropped": "dropped", "open": "open",
            "click": "click"}.get(kind)
    if word and EMAIL_RANK[word] >= EMAIL_RANK.get(comm["provider_status"] or "", 0):
        changes["provider_status"] = word
    if kind == "processed" and comm["status"] == "sending":
        changes["status"] = "sent"
    elif kind == "delivered":
        if communications.may_move(comm["status"], "delivered"):
            changes["status"] = "delivered"
        changes["delivered_at"] = comm["delivered_at"] or occurred
    elif kind == "open":
        # Machine opens (Apple Mail privacy proxies) are recorded as events, not as opens.
        if not event.get("sg_machine_open") and comm["opened_at"] is None:
            changes["opened_at"] = occurred
    elif kind == "click":
        if comm["clicked_at"] is None:
            changes["clicked_at"] = occurred
            changes["clicked_url"] = event.get("url")
        if comm["opened_at"] is None:
            changes["opened_at"] = occurred   # a click proves an open
    elif kind in ("bounce", "blocked"):
        bounce_type = "hard" if kind == "bounce" and event.get("type", "bounce") == "bounce" \
            else "soft"
        diagnostic = " ".join(str(x) for x in (event.get("status"), event.get("reason")) if x)
        _bounce(tx, org_id, comm, changes, bounce_type, diagnostic, address)
    elif kind == "dropped":
        # SendGrid will not send it (suppressed address): final, never retried.
        if communications.may_move(comm["status"], "failed"):
            changes["status"] = "failed"
        changes["error"] = f"dropped by SendGrid: {event.get('reason') or 'unknown reason'}"
    elif kind == "spamreport":
        changes["complained_at"] = occurred
    store.update_communication(tx, org_id, comm["id"], changes)
    return "matched"


def _bounce(tx, org_id, comm, changes, bounce_type, diagnostic, address):
    if not communications.may_move(comm["status"], "bounced"):
        return
    changes.update({"status": "bounced", "bounce_type": bounce_type,
                    "error": diagnostic[:1000] or None})
    tx.emit("email_bounced", {
        "org_id": org_id, "communication_id": str(comm["id"]), "draft_id": _s(comm["draft_id"]),
        "contact_id": _s(comm["contact_id"]), "campaign_id": _s(comm["campaign_id"]),
        "run_id": _s(comm["run_id"]), "is_test": comm["is_test"], "channel": "email",
        "identifier": address or comm["to_address"], "bounce_type": bounce_type,
        "diagnostic": diagnostic[:1000],
    })


# -- Mailgun --------------------------------------------------------------------------------

def _prepare_mailgun(body, headers):
    try:
        data = json.loads(body)
        sig = data["signature"]
        event = data["event-data"]
        assert isinstance(sig, dict) and isinstance(event, dict)
    except (ValueError, UnicodeDecodeError, KeyError, TypeError, AssertionError):
        raise Refused()
    mid = str(((event.get("message") or {}).get("headers") or {}).get("message-id") or "").strip()
    mid = mid.strip("<>")
    uv = event.get("user-variables") or {}
    return {"signature": sig, "event": sanitize.deep(event), "body_sha256": hashlib.sha256(body).hexdigest(),
            "message_ids": [f"<{mid}>"] if mid else [],
            "comm_id": _uuid(uv.get("communication_id") if isinstance(uv, dict) else None)}


def _mailgun_candidates(tx, prepared):
    found = []
    if prepared["comm_id"]:
        found += store.orgs_with_communication(tx, "mailgun", "id", [prepared["comm_id"]])
    for org in store.orgs_with_communication(tx, "mailgun", "message_id", prepared["message_ids"]):
        if org not in found:
            found.append(org)
    return found


def _verify_mailgun(srow, secrets, req, body, headers, prepared, keyed):
    sig = prepared["signature"]
    if srow is None:
        return False
    return signatures.mailgun_valid(secrets.get("signing_key"), sig.get("timestamp"),
                                    sig.get("token"), sig.get("signature"))


def _process_mailgun(db, org_id, srow, prepared, find_contact, now=None):
    sig, event = prepared["signature"], prepared["event"]
    tolerance = (srow["config"] or {}).get("timestamp_tolerance_seconds", 900)
    if not signatures.timestamp_fresh(sig.get("timestamp"), tolerance,
                                      now.timestamp() if now else None):
        raise Refused("webhook refused: timestamp too far from our clock")
    event_id = str(event.get("id") or "")
    kind = str(event.get("event") or "").lower()
    dedupe = f"mailgun:{event_id or sig.get('token')}"
    with db.transaction() as tx:
        if not store.claim_mailgun_token(tx, org_id, str(sig.get("token")),
                                         prepared["body_sha256"]):
            # A signature can be replayed with any event-data: a token is good once.
            raise Refused("webhook refused: token already used")
        comm = None
        if prepared["comm_id"]:
            comm = store.find_communication(tx, org_id, "id", [prepared["comm_id"]])
        if comm is None:
            comm = store.find_communication(tx, org_id, "message_id", prepared["message_ids"])
        if comm is not None:
            comm = store.lock_communication(tx, org_id, comm["id"])
        occurred = _from_unix(event.get("timestamp")) or _now(now)
        status = event.get("delivery-status") or {}
        data = {"event": kind, "severity": event.get("severity"), "reason": event.get("reason"),
                "code": status.get("code"), "recipient": event.get("recipient")}
        if not store.add_provider_event(tx, org_id, dedupe, "mailgun", kind,
                                        comm["id"] if comm else None, data, occurred):
            return _duplicate(tx, org_id, store.provider_event(tx, org_id, dedupe))
        address = str(event.get("recipient") or (comm["to_address"] if comm else "")).lower()
        if kind in ("complained", "unsubscribed") and address:
            tx.emit("opt_out_requested", {
                "org_id": org_id, "channel": "email", "identifier": address,
                "source": "user_action", "unsubscribed": True,
                "reason": "spam_complaint" if kind == "complained" else kind,
                "contact_id": _s(comm["contact_id"]) if comm else None,
                "communication_id": _s(comm["id"]) if comm else None})
        if comm is None:
            return {"kind": "event", "matched": False, "duplicate": False, "communication": None}
        changes = {"provider": "mailgun"}
        word = {"accepted": "accepted", "delivered": "delivered", "opened": "opened",
                "clicked": "clicked"}.get(kind)
        if kind == "failed":
            word = "failed" if event.get("severity") == "permanent" else "deferred"
        if word and EMAIL_RANK[word] >= EMAIL_RANK.get(comm["provider_status"] or "", 0):
            changes["provider_status"] = word
        if kind == "delivered":
            if communications.may_move(comm["status"], "delivered"):
                changes["status"] = "delivered"
            changes["delivered_at"] = comm["delivered_at"] or occurred
        elif kind == "failed" and event.get("severity") == "permanent":
            diagnostic = " ".join(str(x) for x in (
                status.get("code"), status.get("bounce-code"),
                re.sub(r"\s+", " ", str(status.get("message") or status.get("description") or ""))
            ) if x)
            _bounce(tx, org_id, comm, changes, "hard", diagnostic, address)
        elif kind == "opened" and comm["opened_at"] is None:
            changes["opened_at"] = occurred
        elif kind == "clicked" and comm["clicked_at"] is None:
            changes["clicked_at"] = occurred
            changes["clicked_url"] = event.get("url")
        elif kind == "complained":
            changes["complained_at"] = occurred
        store.update_communication(tx, org_id, comm["id"], changes)
        row = store.get_communication(tx, org_id, comm["id"])
    return {"kind": "event", "matched": True, "duplicate": False,
            "communication": communications.view(row)}


# -- inbound mail through providers (Postmark JSON, SendGrid Inbound Parse) -----------------

def postmark_parsed(data):
    """Postmark's inbound JSON as the parsed-email dict inbound.record takes."""
    headers = [(h.get("Name") or "", h.get("Value") or "") for h in data.get("Headers") or []
               if isinstance(h, dict)]
    lookup = {}
    for name, value in headers:
        lookup.setdefault(name.lower(), value)
    msg = email.message.Message()
    for name, value in headers:
        if name.lower() not in ("received",):
            msg[name] = value.replace("\r", " ").replace("\n", " ")
    msg["Subject"] = (data.get("Subject") or "").replace("\r", " ").replace("\n", " ")
    text = data.get("TextBody")
    body, stripped = inbound_email.body_text(
        str(text)[:inbound_email.BODY_CHARS + 1] if text else None,
        str(data.get("HtmlBody") or "")[:inbound_email.HTML_CHARS + 1])
    if data.get("StrippedTextReply"):
        stripped = reply_text.normalize(
            sanitize.text(str(data["StrippedTextReply"])[:inbound_email.BODY_CHARS]))
    tokens = []
    for value in [data.get("MailboxHash")] + [t.get("MailboxHash") for t in data.get("ToFull") or []
                                              if isinstance(t, dict)]:
        if value and value not in tokens:
            tokens.append(value)
    for value in (data.get("To") or "", data.get("OriginalRecipient") or ""):
        for token in inbound_email.REPLY_TOKEN.findall(value):
            if token not in tokens:
                tokens.append(token)
    full = data.get("FromFull") or {}
    from_address = (full.get("Email") or data.get("From") or "").strip().lower()
    message_id = inbound_email._first_id(lookup.get("message-id", ""))
    parsed = {
        "from_name": full.get("Name") or data.get("FromName") or "",
        "from_address": from_address,
        "to": data.get("To") or "",
        "subject": inbound_email._clean_subject(data.get("Subject")),
        "message_id": message_id,
        "in_reply_to": inbound_email.MSGID.findall(lookup.get("in-reply-to", "")),
        "references": inbound_email.MSGID.findall(lookup.get("references", "")),
        "reply_tokens": tokens, "bounce_tokens": [],
        "body": body, "stripped_text": stripped,
        "attachments": [{"filename": a.get("Name") or "attachment",
                         "content_type": a.get("ContentType") or "application/octet-stream",
                         "size": a.get("ContentLength")}
                        for a in data.get("Attachments") or [] if isinstance(a, dict)],
        "automatic": inbound_email.is_automatic(msg),
        "bounce": None,
        "dedupe_key": "postmark:" + str(data.get("MessageID")),
    }
    parsed = sanitize.deep(parsed)
    parsed["opt_out"] = bool(not parsed["automatic"]
                             and inbound_email.OPT_OUT.search(parsed["stripped_text"]))
    return parsed


def _prepare_postmark(body, headers):
    try:
        # Basic auth, not a body signature: the payload may be cleaned before it is read.
        data = sanitize.deep(json.loads(body))
        assert isinstance(data, dict) and data.get("MessageID")
        parsed = postmark_parsed(data)
    except (ValueError, UnicodeDecodeError, AssertionError, TypeError, AttributeError):
        raise Refused()
    return {"parsed": parsed}


def form_fields(body, content_type):
    """multipart/form-data -> ({name: text}, [files]) with the stdlib MIME parser (tolerates
    LF-only bodies)."""
    if "multipart/form-data" not in (content_type or "").lower():
        raise Refused()
    msg = email.message_from_bytes(
        b"MIME-Version: 1.0\r\nContent-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body,
        policy=email.policy.compat32)
    if not msg.is_multipart():
        raise Refused()
    fields, files = {}, []
    charsets = {}
    parts = msg.get_payload()
    for part in parts:
        name = part.get_param("name", header="content-disposition")
        if name is None:
            continue
        data = part.get_payload(decode=True) or b""
        if part.get_filename():
            files.append({"filename": part.get_filename(), "content_type": part.get_content_type(),
                          "size": len(data)})
            continue
        fields[name] = data
    if "charsets" in fields:
        try:
            charsets = json.loads(fields["charsets"].decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            charsets = {}
    text = {}
    for name, data in fields.items():
        charset = charsets.get(name) or "utf-8"
        try:
            text[name] = data.decode(charset, "replace")
        except LookupError:
            text[name] = data.decode("utf-8", "replace")
    return text, files


_DROP_HEADER = re.compile(r"^(content-type|content-transfer-encoding)\s*:", re.IGNORECASE)


def sendgrid_inbound_raw(fields):
    """An RFC 5322 message rebuilt from Inbound Parse fields: the original `headers` (without
    the multipart Content-Type) over the parsed `text` (else `html`); raw mode's `email` as is."""
    if fields.get("email"):
        return fields["email"].encode("utf-8", "surrogateescape")
    kept, dropping = [], False
    for line in (fields.get("headers") or "").replace("\r\n", "\n").split("\n"):
        if not line.strip():
            continue
        if line[0] in " \t":
            if not dropping:
                kept.append(line)
            continue
        dropping = bool(_DROP_HEADER.match(line))
        if not dropping:
            kept.append(line)
    try:
        envelope = json.loads(fields.get("envelope") or "{}")
    except ValueError:
        envelope = {}
    for rcpt in envelope.get("to") or []:
        kept.append(f"Delivered-To: {rcpt}")
    if fields.get("text") is not None:
        kept.append("Content-Type: text/plain; charset=utf-8")
        content = fields["text"]
    else:
        kept.append("Content-Type: text/html; charset=utf-8")
        content = fields.get("html") or ""
    kept.append("Content-Transfer-Encoding: 8bit")
    return ("\r\n".join(kept) + "\r\n\r\n" + content).encode("utf-8")


def _prepare_sendgrid_inbound(body, headers):
    fields, files = form_fields(body, headers.get("content-type"))
    raw = sendgrid_inbound_raw(fields)
    parsed = inbound_email.parse(raw)
    if files:
        parsed["attachments"] = files
    if not parsed["from_address"] and fields.get("from"):
        name, addr = email.utils.parseaddr(fields["from"])
        parsed["from_name"], parsed["from_address"] = name, addr.lower()
    if not parsed["from_address"]:
        raise Refused()
    return {"parsed": sanitize.deep(parsed)}


def _inbound_candidates(provider):
    def candidates(tx, prepared):
        parsed = prepared["parsed"]
        found = []
        ids = inbound_email.thread_candidates(parsed)
        for column, values in (("message_id", ids), ("reply_token", parsed["reply_tokens"])):
            for org in store.orgs_with_communication(tx, provider, column, values):
                if org not in found:
                    found.append(org)
        return found
    return candidates


def _verify_basic(srow, secrets, headers):
    if srow is None:
        return False
    return signatures.basic_auth_valid(headers.get("authorization"),
                                       (srow["config"] or {}).get("inbound_username"),
                                       secrets.get("inbound_password"))


def _verify_postmark(srow, secrets, req, body, headers, prepared, keyed):
    return _verify_basic(srow, secrets, headers)


def _verify_sendgrid_inbound(srow, secrets, req, body, headers, prepared, keyed):
    configured = bool(srow and (srow["config"] or {}).get("inbound_username"))
    if configured:
        return _verify_basic(srow, secrets, headers)
    # Without basic auth only the secret key in the URL protects the endpoint.
    return keyed


def _process_inbound_mail(db, org_id, srow, prepared, find_contact, now=None):
    parsed = prepared["parsed"]
    with db.transaction() as tx:
        original = inbound.match(tx, org_id, parsed)
    contact_id = None
    if original is None or original["contact_id"] is None:
        contact_id = find_contact(org_id, email=parsed["from_address"])
    for _ in range(2):
        try:
            with db.transaction() as tx:
                result = inbound.record(tx, org_id, parsed, original, contact_id)
                return result
        except inbound.DuplicateRace:
            continue
    raise inbound.DuplicateRace()


# -- tables ---------------------------------------------------------------------------------

PREPARE = {
    ("twilio", "sms_inbound"): _prepare_twilio, ("twilio", "sms_status"): _prepare_twilio,
    ("twilio", "voice_status"): _prepare_twilio,
    ("sendgrid", "events"): _prepare_sendgrid_events,
    ("sendgrid", "inbound"): _prepare_sendgrid_inbound,
    ("mailgun", "events"): _prepare_mailgun, ("postmark", "inbound"): _prepare_postmark,
}
CANDIDATES = {
    ("twilio", "sms_inbound"): _twilio_candidates, ("twilio", "sms_status"): _twilio_candidates,
    ("twilio", "voice_status"): _twilio_candidates,
    ("sendgrid", "events"): _sendgrid_candidates,
    ("sendgrid", "inbound"): _inbound_candidates("sendgrid"),
    ("mailgun", "events"): _mailgun_candidates,
    ("postmark", "inbound"): _inbound_candidates("postmark"),
}
VERIFY = {
    ("twilio", "sms_inbound"): _verify_twilio, ("twilio", "sms_status"): _verify_twilio,
    ("twilio", "voice_status"): _verify_twilio,
    ("sendgrid", "events"): _verify_sendgrid_events,
    ("sendgrid", "inbound"): _verify_sendgrid_inbound,
    ("mailgun", "events"): _verify_mailgun, ("postmark", "inbound"): _verify_postmark,
}
PROCESS = {
    ("twilio", "sms_inbound"): _process_sms_inbound, ("twilio", "sms_status"): _process_sms_status,
    ("twilio", "voice_status"): _process_voice_status,
    ("sendgrid", "events"): _process_sendgrid_events,
    ("sendgrid", "inbound"): _process_inbound_mail,
    ("mailgun", "events"): _process_mailgun, ("postmark", "inbound"): _process_inbound_mail,
}


# -- helpers --------------------------------------------------------------------------------

def _duplicate(tx, org_id, receipt):
    row = None
    if receipt and receipt["communication_id"]:
        row = store.get_communication(tx, org_id, receipt["communication_id"])
    return {"kind": receipt["event_type"] if receipt else "event", "duplicate": True,
            "communication": communications.view(row) if row else None}


def _from_unix(value):
    try:
        return datetime.datetime.fromtimestamp(float(value), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _rfc2822(value):
    try:
        return email.utils.parsedate_to_datetime(value) if value else None
    except (TypeError, ValueError):
        return None


def _now(now):
    return now or datetime.datetime.now(tz=UTC)


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _uuid(value):
    try:
        return str(uuid.UUID(str(value))) if value else None
    except ValueError:
        return None


def _s(value):
    return None if value is None else str(value)
