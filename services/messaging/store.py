"""SQL for messaging's tables. Every function takes a transaction (`tx`) and, where it touches
organization data, the org_id first."""
import json
import uuid

COMM_COLUMNS = (
    "id, org_id, thread_id, draft_id, direction, channel, status, is_test, automatic, campaign_id, "
    "run_id, contact_id, from_name, from_address, to_name, to_address, subject, body, "
    "stripped_text, message_id, in_reply_to, \"references\", reply_token, bounce_token, "
    "attachments, error, bounce_type, attempts, next_attempt_at, created_at, sent_at, updated_at"
)


# -- email settings -------------------------------------------------------------------------

def email_settings(tx, org_id, new_inbound_key):
    """The org's settings row, created (with its inbound key) the first time anyone asks."""
    tx.execute(
        "INSERT INTO email_settings (org_id, inbound_key) VALUES (%s, %s) ON CONFLICT DO NOTHING",
        (org_id, new_inbound_key),
    )
    return tx.one("SELECT * FROM email_settings WHERE org_id = %s", (org_id,))


def settings_by_inbound_key(tx, inbound_key):
    return tx.one("SELECT * FROM email_settings WHERE inbound_key = %s", (inbound_key,))


def set_sender(tx, org_id, name, email, reply_domain):
    tx.execute(
        "UPDATE email_settings SET sender_name = %s, sender_email = %s, reply_domain = %s, "
        "updated_at = now() WHERE org_id = %s",
        (name, email, reply_domain, org_id),
    )


def set_smtp_provider(tx, org_id, host, port, username, password_enc, tls_mode):
    # A NULL password_enc keeps the stored one (the client left the password out of an update).
    tx.execute(
        "UPDATE email_settings SET provider_kind = 'smtp', smtp_host = %s, smtp_port = %s, "
        "smtp_username = %s, smtp_password_enc = COALESCE(%s, smtp_password_enc), "
        "smtp_tls_mode = %s, updated_at = now() WHERE org_id = %s",
        (host, port, username, password_enc, tls_mode, org_id),
    )


# -- outbound -------------------------------------------------------------------------------

def insert_outbound(tx, rows):
    """Bulk insert queued outbound communications; drafts that already have one are skipped
    (ON CONFLICT on draft_id). Returns the rows actually inserted."""
    if not rows:
        return []
    inserted = tx.values(
        "INSERT INTO communications (id, org_id, thread_id, draft_id, direction, channel, status, "
        "is_test, campaign_id, run_id, contact_id, from_name, from_address, to_name, to_address, "
        "subject, body, message_id, reply_token, bounce_token, error, next_attempt_at) VALUES %s "
        "ON CONFLICT (draft_id) DO NOTHING RETURNING id, thread_id, draft_id, status",
        [(r["id"], r["org_id"], r["thread_id"], r["draft_id"], "outbound", r["channel"],
          r["status"], r["is_test"], r["campaign_id"], r["run_id"], r["contact_id"],
          r["from_name"], r["from_address"], r["to_name"], r["to_address"], r["subject"],
          r["body"], r["message_id"], r["reply_token"], r["bounce_token"], r.get("error"),
          None) for r in rows],
        fetch=True,
    )
    return inserted


def insert_threads(tx, rows):
    if rows:
        tx.values(
            "INSERT INTO threads (id, org_id, channel, contact_id, campaign_id, run_id, is_test, "
            "subject) VALUES %s",
            [(r["id"], r["org_id"], r["channel"], r["contact_id"], r["campaign_id"], r["run_id"],
              r["is_test"], r["subject"]) for r in rows],
        )


def claim_queued(tx, org_id, ids):
    """Lock the queued communications among `ids` that are due (SKIP LOCKED: another replica
    already working on one keeps it)."""
    return tx.all(
        f"SELECT {COMM_COLUMNS} FROM communications WHERE org_id = %s AND id = ANY(%s::uuid[]) "
        "AND status = 'queued' AND (next_attempt_at IS NULL OR next_attempt_at <= now()) "
        "ORDER BY created_at, id FOR UPDATE SKIP LOCKED",
        (org_id, [str(i) for i in ids]),
    )


def due_queued(tx, limit, older_than_seconds):
    """Queued communications a crash or an outage left behind, grouped by the sweeper per org."""
    return tx.all(
        "SELECT id, org_id FROM communications WHERE status = 'queued' AND "
        "COALESCE(next_attempt_at, created_at + make_interval(secs => %s)) <= now() "
        "ORDER BY COALESCE(next_attempt_at, created_at) LIMIT %s FOR UPDATE SKIP LOCKED",
        (older_than_seconds, limit),
    )


def set_status(tx, ids, status, error=None, sent=False, attempts_increment=0,
               next_attempt_seconds=None):
    if not ids:
        return
    tx.execute(
        "UPDATE communications SET status = %s, error = %s, updated_at = now(), "
        "attempts = attempts + %s, "
        "sent_at = CASE WHEN %s THEN now() ELSE sent_at END, "
        "next_attempt_at = CASE WHEN %s::float IS NULL THEN NULL "
        "ELSE now() + make_interval(secs => %s::float) END "
        "WHERE id = ANY(%s::uuid[])",
        (status, error, attempts_increment, sent, next_attempt_seconds, next_attempt_seconds,
         [str(i) for i in ids]),
    )


def postpone(tx, ids, seconds, reason):
    """Keep queued rows queued but not due again for `seconds`."""
    tx.execute(
        "UPDATE communications SET next_attempt_at = now() + make_interval(secs => %s), "
        "error = %s, updated_at = now() WHERE id = ANY(%s::uuid[]) AND status = 'queued'",
        (seconds, reason, [str(i) for i in ids]),
    )


def touch_threads(tx, thread_ids):
    if thread_ids:
        tx.execute("UPDATE threads SET last_message_at = now() WHERE id = ANY(%s::uuid[])",
                   ([str(t) for t in set(thread_ids)],))


# -- inbound --------------------------------------------------------------------------------

def find_by_message_ids(tx, org_id, message_ids):
    """The communications carrying any of these Message-IDs, in the order of `message_ids`."""
    if not message_ids:
        return None
    rows = tx.all(
        f"SELECT {COMM_COLUMNS} FROM communications WHERE org_id = %s AND message_id = ANY(%s)",
        (org_id, list(message_ids)),
    )
    by_id = {r["message_id"]: r for r in rows}
    for mid in message_ids:
        if mid in by_id:
            return by_id[mid]
    return None


def find_by_token(tx, org_id, column, tokens):
    assert column in ("reply_token", "bounce_token")
    for token in tokens:
        row = tx.one(f"SELECT {COMM_COLUMNS} FROM communications WHERE org_id = %s AND {column} = %s",
                     (org_id, token))
        if row:
            return row
    return None


def inbound_receipt(tx, org_id, dedupe_key):
    return tx.one("SELECT * FROM inbound_emails WHERE org_id = %s AND dedupe_key = %s",
                  (org_id, dedupe_key))


def add_inbound_receipt(tx, org_id, dedupe_key, kind, communication_id):
    """True if this is the first time the message is seen (the row was inserted)."""
    row = tx.one(
        "INSERT INTO inbound_emails (org_id, dedupe_key, kind, communication_id) "
        "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING dedupe_key",
        (org_id, dedupe_key, kind, communication_id),
    )
    return row is not None


def insert_thread(tx, org_id, channel, contact_id, subject, campaign_id=None, run_id=None,
                  is_test=False):
    thread_id = str(uuid.uuid4())
    insert_threads(tx, [{"id": thread_id, "org_id": org_id, "channel": channel,
                         "contact_id": contact_id, "campaign_id": campaign_id, "run_id": run_id,
                         "is_test": is_test, "subject": subject}])
    return thread_id


def insert_communication(tx, row):
    """One communication of any direction (inbound mail, seeded fixtures); returns the row."""
    row = dict(row)
    row.setdefault("id", str(uuid.uuid4()))
    row["attachments"] = json.dumps(row.get("attachments") or [])
    columns = list(row)
    placeholders = ", ".join(["%s"] * len(columns))
    quoted = ", ".join('"references"' if c == "references" else c for c in columns)
    return tx.one(
        f"INSERT INTO communications ({quoted}) VALUES ({placeholders}) RETURNING {COMM_COLUMNS}",
        [row[c] for c in columns],
    )


def mark_bounced(tx, comm_id, bounce_type, error):
    tx.execute(
        "UPDATE communications SET status = 'bounced', bounce_type = %s, error = %s, "
        "updated_at = now() WHERE id = %s",
        (bounce_type, error, comm_id),
    )


# -- reading --------------------------------------------------------------------------------

def get_communication(tx, org_id, comm_id):
    return tx.one(f"SELECT {COMM_COLUMNS} FROM communications WHERE org_id = %s AND id = %s",
                  (org_id, comm_id))


def list_communications(tx, org_id, filters, cursor, limit):
    """Newest first; keyset on (created_at, id) so deep pages cost the same as the first."""
    where, params = ["org_id = %s"], [org_id]
    for column in ("channel", "direction", "status", "is_test", "campaign_id", "run_id",
                   "contact_id", "thread_id"):
        value = filters.get(column)
        if value is not None:
            where.append(f"{column} = %s")
            params.append(str(value) if not isinstance(value, bool) else value)
    if filters.get("since"):
        where.append("created_at >= %s")
        params.append(filters["since"])
    if filters.get("until"):
        where.append("created_at < %s")
        params.append(filters["until"])
    if cursor:
        where.append("(created_at, id) < (%s, %s)")
        params.extend(cursor)
    params.append(limit + 1)
    return tx.all(
        f"SELECT {COMM_COLUMNS} FROM communications WHERE {' AND '.join(where)} "
        "ORDER BY created_at DESC, id DESC LIMIT %s",
        params,
    )


def get_thread(tx, org_id, thread_id):
    return tx.one("SELECT * FROM threads WHERE org_id = %s AND id = %s", (org_id, thread_id))


def thread_messages(tx, org_id, thread_id):
    return tx.all(
        f"SELECT {COMM_COLUMNS} FROM communications WHERE org_id = %s AND thread_id = %s "
        "ORDER BY created_at, id",
        (org_id, thread_id),
    )
