"""Communications and threads: the one status vocabulary with its allowed transitions, how a row
is shown to clients, and the feed's keyset cursor."""
import base64
import binascii
import datetime
import uuid

from services.common.errors import Invalid

# status -> the statuses it may move to.
TRANSITIONS = {
    "queued": {"sending", "failed"},
    # queued again only after a transient SMTP refusal; bounced when a DSN proves it left.
    # Provider webhooks may overtake our own bookkeeping, hence sending -> delivered etc.
    "sending": {"sent", "failed", "queued", "bounced", "delivered", "undelivered", "completed",
                "missed"},
    "sent": {"delivered", "bounced", "failed", "undelivered", "completed", "missed"},
    "delivered": {"bounced"},                    # late bounces happen
    "undelivered": set(),                        # SMS the carrier could not hand over (final)
    "bounced": set(),
    "failed": set(),
    "completed": set(),                          # calls that connected
    "missed": set(),                             # calls not answered (no-answer, busy, ...)
    "received": set(),                           # inbound messages
}
STATUSES = tuple(TRANSITIONS)
DIRECTIONS = ("outbound", "inbound")


def may_move(current, new):
    return new in TRANSITIONS.get(current, set())


def view(row):
    """JSON-safe communication: ids and datetimes as strings, internals left out."""
    out = {
        "id": str(row["id"]), "thread_id": str(row["thread_id"]),
        "draft_id": _s(row["draft_id"]), "direction": row["direction"],
        "channel": row["channel"], "status": row["status"], "is_test": row["is_test"],
        "automatic": row["automatic"], "campaign_id": _s(row["campaign_id"]),
        "run_id": _s(row["run_id"]), "contact_id": _s(row["contact_id"]),
        "from_name": row["from_name"], "from_address": row["from_address"],
        "to_name": row["to_name"], "to_address": row["to_address"],
        "subject": row["subject"], "body": row["body"],
        "stripped_text": row["stripped_text"],
        "preview_text": _preview(row), "message_id": row["message_id"],
        "in_reply_to": row["in_reply_to"], "references": list(row["references"] or []),
        "attachments": row["attachments"] or [], "error": row["error"],
        "bounce_type": row["bounce_type"],
        # What the provider reported (webhooks); None until it says something.
        "provider": row.get("provider"), "provider_message_id": row.get("provider_message_id"),
        "provider_status": row.get("provider_status"), "error_code": row.get("error_code"),
        "delivered_at": _t(row.get("delivered_at")), "opened_at": _t(row.get("opened_at")),
        "clicked_at": _t(row.get("clicked_at")), "clicked_url": row.get("clicked_url"),
        "complained_at": _t(row.get("complained_at")),
        "duration_seconds": row.get("duration_seconds"), "outcome": row.get("outcome"),
        "recording": row.get("recording"),
        "created_at": _t(row["created_at"]), "sent_at": _t(row["sent_at"]),
        "updated_at": _t(row["updated_at"]),
    }
    return out


def thread_view(thread, messages):
    return {
        "id": str(thread["id"]), "channel": thread["channel"],
        "contact_id": _s(thread["contact_id"]), "campaign_id": _s(thread["campaign_id"]),
        "run_id": _s(thread["run_id"]), "is_test": thread["is_test"],
        "subject": thread["subject"], "created_at": _t(thread["created_at"]),
        "last_message_at": _t(thread["last_message_at"]),
        "messages": [view(m) for m in messages],
    }


def encode_cursor(row):
    raw = f"{row['created_at'].isoformat()}|{row['id']}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_cursor(cursor):
    """(created_at, id) or ValueError for anything that is not one of our cursors."""
    try:
        raw = base64.urlsafe_b64decode(cursor.encode("ascii") + b"=" * (-len(cursor) % 4)).decode()
        created, sep, ident = raw.partition("|")
        if not sep:
            raise ValueError("no separator")
        when = datetime.datetime.fromisoformat(created)
        if when.tzinfo is None:
            raise ValueError("not one of our timestamps")
        return when, str(uuid.UUID(ident))
    except (ValueError, TypeError, UnicodeError, binascii.Error, OverflowError) as err:
        raise ValueError(f"not a cursor: {err}") from None


def cursor_position(cursor, find_row, field="after"):
    """The (created_at, id) keyset position of a feed cursor, or Invalid naming `field`.
    Campaigns' lists use the same created_at|id shape, so a decodable cursor must also name a
    communication of this organization created at that very time (`find_row(id)` -> row or
    None): a cursor of another list or organization is refused, not read as a position."""
    message = "not a cursor this list returned (use next_cursor as it was given)"
    try:
        when, comm_id = decode_cursor(cursor)
    except ValueError:
        raise Invalid("invalid input", errors={field: [message]})
    row = find_row(comm_id)
    if row is None or row["created_at"] != when:
        raise Invalid("invalid input", errors={field: [message]})
    return when, comm_id


def _preview(row):
    text = row["stripped_text"] if row["stripped_text"] is not None else (row["body"] or "")
    text = " ".join(text.split())
    return text[:160]


def _s(value):
    return None if value is None else str(value)


def _t(value):
    return value.isoformat() if value is not None else None
