"""Placing an inbound email: find the thread it answers (In-Reply-To, else any References entry,
else the reply token in To/Delivered-To), record it once (deduplicated by Message-ID), and say
what happened: a reply, an automatic reply, a bounce of one of our messages, an opt-out request."""
from services.messaging import communications, inbound_email, store

def match(tx, org_id, parsed):
    """The communication this email refers to, or None."""
    if parsed["bounce"] is not None:
        found = store.find_by_message_ids(tx, org_id, parsed["bounce"]["original_message_ids"])
        return found or store.find_by_token(tx, org_id, "bounce_token", parsed["bounce_tokens"])
    found = store.find_by_message_ids(tx, org_id, inbound_email.thread_candidates(parsed))
    return found or store.find_by_token(tx, org_id, "reply_token", parsed["reply_tokens"])


def record(tx, org_id, parsed, original, contact_id):
    """Store the email (first time only) and emit its events. Returns
    {kind, duplicate, communication}."""
    if parsed["bounce"] is not None:
        return _record_bounce(tx, org_id, parsed, original)
    kind = "automatic" if parsed["automatic"] else "reply"
    existing = store.inbound_receipt(tx, org_id, parsed["dedupe_key"])
    if existing:
        return _duplicate(tx, org_id, existing)
    if original is not None:
        thread_id = original["thread_id"]
        contact_id = original["contact_id"] or contact_id
        campaign_id, run_id, is_test = original["campaign_id"], original["run_id"], original["is_test"]
    else:
        campaign_id = run_id = None
        is_test = False
        thread_id = store.insert_thread(tx, org_id, "email", contact_id, parsed["subject"])
    row = store.insert_communication(tx, {
        "org_id": org_id, "thread_id": thread_id, "direction": "inbound", "channel": "email",
        "status": "received", "is_test": is_test, "automatic": parsed["automatic"],
        "campaign_id": campaign_id, "run_id": run_id, "contact_id": contact_id,
        "from_name": parsed["from_name"], "from_address": parsed["from_address"],
        "to_address": ", ".join(inbound_email.recipient_addresses(parsed["to"])) or None,
        "subject": parsed["subject"], "body": parsed["body"],
        "stripped_text": parsed["stripped_text"], "message_id": parsed["message_id"],
        "in_reply_to": (parsed["in_reply_to"] or [None])[0],
        "references": parsed["references"], "attachments": parsed["attachments"],
    })
    if not store.add_inbound_receipt(tx, org_id, parsed["dedupe_key"], kind, row["id"]):
        # The same email arrived twice at once; the other copy won. Undo ours.
        raise DuplicateRace()
    store.touch_threads(tx, org_id, [thread_id])
    if not parsed["automatic"]:
        # Auto-replies stay in the thread but are not replies: no event, nothing sent back.
        tx.emit("reply_received", {
            "org_id": org_id, "communication_id": str(row["id"]), "thread_id": str(thread_id),
            "contact_id": _s(contact_id), "campaign_id": _s(campaign_id), "run_id": _s(run_id),
            "channel": "email", "is_test": is_test, "automatic": False,
            "in_reply_to_communication_id": _s(original["id"]) if original else None,
        })
    if parsed["opt_out"] and parsed["from_address"]:
        tx.emit("opt_out_requested", {
            "org_id": org_id, "channel": "email", "identifier": parsed["from_address"],
            "source": "user_intent", "contact_id": _s(contact_id),
            "communication_id": str(row["id"]),
        })
    return {"kind": kind, "duplicate": False, "communication": communications.view(row)}


def _record_bounce(tx, org_id, parsed, original):
    """A DSN marks our message bounced and tells contacts the address failed; it is not stored
    as an inbound message and nothing is sent back to it."""
    existing = store.inbound_receipt(tx, org_id, parsed["dedupe_key"])
    if existing:
        return _duplicate(tx, org_id, existing)
    dsn = parsed["bounce"]
    if original is None or not dsn["failed"]:
        store.add_inbound_receipt(tx, org_id, parsed["dedupe_key"], "bounce_unmatched", None)
        return {"kind": "bounce", "duplicate": False, "communication": None}
    if not store.add_inbound_receipt(tx, org_id, parsed["dedupe_key"], "bounce", original["id"]):
        raise DuplicateRace()
    if communications.may_move(original["status"], "bounced"):
        store.mark_bounced(tx, org_id, original["id"], dsn["bounce_type"], dsn["diagnostic"] or None)
        tx.emit("email_bounced", {
            "org_id": org_id, "communication_id": str(original["id"]),
            "draft_id": _s(original["draft_id"]), "contact_id": _s(original["contact_id"]),
            "campaign_id": _s(original["campaign_id"]), "run_id": _s(original["run_id"]),
            "is_test": original["is_test"], "channel": "email",
            # The address we sent to, never one the report names: anyone can mail us a report,
            # and a Final-Recipient of their choosing must not suppress somebody else.
            "identifier": original["to_address"],
            "bounce_type": dsn["bounce_type"], "diagnostic": dsn["diagnostic"],
        })
    row = store.get_communication(tx, org_id, original["id"])
    return {"kind": "bounce", "duplicate": False, "communication": communications.view(row)}


def _duplicate(tx, org_id, receipt):
    row = None
    if receipt["communication_id"]:
        row = store.get_communication(tx, org_id, receipt["communication_id"])
    kind = "bounce" if receipt["kind"].startswith("bounce") else receipt["kind"]
    return {"kind": kind, "duplicate": True,
            "communication": communications.view(row) if row else None}


class DuplicateRace(Exception):
    """Two copies of one email were recorded at the same moment; retry to read the winner's."""


def _s(value):
    return None if value is None else str(value)
