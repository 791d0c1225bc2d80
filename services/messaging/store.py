"""SQL for messaging's tables. Every function takes a transaction (`tx`) and, where it touches
organization data, the org_id first; every read and write of organization rows is filtered by it.
The exceptions find the organization in the first place and say so: the inbound key of a webhook
URL, key-less provider webhooks routed by what their payload names (our number, a message id; the
organization's secret must then verify the request), and the cross-organization send sweeper."""
import json
import uuid

from services.messaging import sanitize

COMM_COLUMNS = (
    "id, org_id, thread_id, draft_id, direction, channel, status, is_test, automatic, campaign_id, "
    "run_id, contact_id, from_name, from_address, to_name, to_address, subject, body, "
    "stripped_text, message_id, in_reply_to, \"references\", reply_token, bounce_token, "
    "attachments, error, bounce_type, attempts, next_attempt_at, created_at, sent_at, updated_at, "
    # what providers reported (webhooks)
    "provider, provider_message_id, provider_status, error_code, delivered_at, opened_at, "
    "clicked_at, clicked_url, complained_at, duration_seconds, outcome, recording"
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
    # No org filter: the secret key in a webhook URL is how the organization is found.
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


def set_incoming_email_skipped(tx, org_id, skipped):
    """Defer the incoming-email step (the first deferral's time is kept) or undo that."""
    tx.execute(
        "UPDATE email_settings SET incoming_email_skipped_at = CASE WHEN %s "
        "THEN COALESCE(incoming_email_skipped_at, now()) END, updated_at = now() "
        "WHERE org_id = %s",
        (skipped, org_id),
    )


def inbound_email_received(tx, org_id):
    """Whether any inbound email (reply, automatic reply or bounce, from any inbound path) was
    ever accepted for the organization: one probe of inbound_emails' primary key."""
    return tx.one("SELECT EXISTS (SELECT 1 FROM inbound_emails WHERE org_id = %s) AS received",
                  (org_id,))["received"]


def count_emails_sent(tx, org_id):
    # The predicate matches the partial index communications_emails_sent word for word (a
    # parameterised status list would keep the planner from proving the index applies).
    return tx.one(
        "SELECT count(*) AS n FROM communications WHERE org_id = %s AND direction = 'outbound' "
        "AND channel = 'email' AND status IN ('sent', 'delivered') AND NOT is_test",
        (org_id,))["n"]


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
              r["is_test"], sanitize.text(r["subject"])) for r in rows],
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
    """Queued communications a crash or an outage left behind, grouped by the sweeper per org.
    No org filter by design: the sweeper serves every organization and hands each its own ids
    (claim_queued then locks them with the org filter)."""
    return tx.all(
        "SELECT id, org_id FROM communications WHERE status = 'queued' AND "
        "COALESCE(next_attempt_at, created_at + make_interval(secs => %s)) <= now() "
        "ORDER BY COALESCE(next_attempt_at, created_at) LIMIT %s FOR UPDATE SKIP LOCKED",
        (older_than_seconds, limit),
    )


def set_status(tx, org_id, ids, status, error=None, sent=False, attempts_increment=0,
               next_attempt_seconds=None):
    if not ids:
        return
    tx.execute(
        "UPDATE communications SET status = %s, error = %s, updated_at = now(), "
        "attempts = attempts + %s, "
        "sent_at = CASE WHEN %s THEN now() ELSE sent_at END, "
        "next_attempt_at = CASE WHEN %s::float IS NULL THEN NULL "
        "ELSE now() + make_interval(secs => %s::float) END "
        "WHERE org_id = %s AND id = ANY(%s::uuid[])",
        (status, sanitize.text(error), attempts_increment, sent, next_attempt_seconds,
         next_attempt_seconds, org_id, [str(i) for i in ids]),
    )


def finish_sending(tx, org_id, comm_id, status):
    """`sending` -> `status` (a provider webhook may already have moved the row further on, which
    is kept); sent_at is set once."""
    tx.execute(
        "UPDATE communications SET status = CASE WHEN status = 'sending' THEN %s ELSE status END, "
        "error = NULL, next_attempt_at = NULL, sent_at = COALESCE(sent_at, now()), "
        "updated_at = now() WHERE org_id = %s AND id = %s",
        (status, org_id, comm_id),
    )


def postpone(tx, org_id, ids, seconds, reason):
    """Keep queued rows queued but not due again for `seconds`."""
    tx.execute(
        "UPDATE communications SET next_attempt_at = now() + make_interval(secs => %s), "
        "error = %s, updated_at = now() WHERE org_id = %s AND id = ANY(%s::uuid[]) "
        "AND status = 'queued'",
        (seconds, reason, org_id, [str(i) for i in ids]),
    )


def touch_threads(tx, org_id, thread_ids):
    if thread_ids:
        tx.execute("UPDATE threads SET last_message_at = now() WHERE org_id = %s "
                   "AND id = ANY(%s::uuid[])", (org_id, [str(t) for t in set(thread_ids)]))


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
    row = sanitize.deep(dict(row))
    row.setdefault("id", str(uuid.uuid4()))
    row["attachments"] = json.dumps(row.get("attachments") or [])
    columns = list(row)
    placeholders = ", ".join(["%s"] * len(columns))
    quoted = ", ".join('"references"' if c == "references" else c for c in columns)
    return tx.one(
        f"INSERT INTO communications ({quoted}) VALUES ({placeholders}) RETURNING {COMM_COLUMNS}",
        [row[c] for c in columns],
    )


def mark_bounced(tx, org_id, comm_id, bounce_type, error):
    tx.execute(
        "UPDATE communications SET status = 'bounced', bounce_type = %s, error = %s, "
        "updated_at = now() WHERE org_id = %s AND id = %s",
        (bounce_type, sanitize.text(error), org_id, comm_id),
    )


# -- reading --------------------------------------------------------------------------------

def get_communication(tx, org_id, comm_id):
    return tx.one(f"SELECT {COMM_COLUMNS} FROM communications WHERE org_id = %s AND id = %s",
                  (org_id, comm_id))


def cursor_row(tx, org_id, comm_id):
    """The communication a feed cursor points at (its keyset position), or None."""
    return tx.one("SELECT id, created_at FROM communications WHERE org_id = %s AND id = %s",
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
    if filters.get("statuses"):  # internal callers only (the dashboard's recently sent)
        where.append("status = ANY(%s)")
        params.append(list(filters["statuses"]))
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


# -- provider settings and webhooks ---------------------------------------------------------

COMM_COLUMNS_ALL = COMM_COLUMNS


def provider_settings(tx, org_id, provider=None):
    if provider:
        return tx.one("SELECT * FROM provider_settings WHERE org_id = %s AND provider = %s",
                      (org_id, provider))
    return tx.all("SELECT * FROM provider_settings WHERE org_id = %s ORDER BY provider", (org_id,))


def save_provider_settings(tx, org_id, provider, config, secrets_enc, route_phone=None,
                           route_service_sid=None, account_sid=None):
    """Insert or replace; psycopg2 UniqueViolation when a routing key belongs to another org
    (the caller turns it into Conflict)."""
    tx.execute("SAVEPOINT provider_settings")
    try:
        tx.execute(
            "INSERT INTO provider_settings (org_id, provider, config, secrets_enc, route_phone, "
            "route_service_sid, account_sid) VALUES (%s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (org_id, provider) DO UPDATE SET config = EXCLUDED.config, "
            "secrets_enc = EXCLUDED.secrets_enc, route_phone = EXCLUDED.route_phone, "
            "route_service_sid = EXCLUDED.route_service_sid, account_sid = EXCLUDED.account_sid, "
            "updated_at = now()",
            (org_id, provider, json.dumps(config), secrets_enc, route_phone, route_service_sid,
             account_sid),
        )
    except Exception:
        tx.execute("ROLLBACK TO SAVEPOINT provider_settings")
        raise
    tx.execute("RELEASE SAVEPOINT provider_settings")


def delete_provider_settings(tx, org_id, provider):
    return tx.one("DELETE FROM provider_settings WHERE org_id = %s AND provider = %s "
                  "RETURNING provider", (org_id, provider)) is not None


def twilio_candidates(tx, phones, service_sids, account_sids):
    """Twilio settings rows a key-less webhook may belong to: by our number, then Messaging
    Service, then account (an account may back several organizations). No org filter: the
    organization is found from the payload here; the webhook is then verified with each
    candidate's own secret before anything is read or stored for it."""
    rows = tx.all(
        "SELECT *, CASE WHEN route_phone = ANY(%s) THEN 0 WHEN route_service_sid = ANY(%s) "
        "THEN 1 ELSE 2 END AS rank FROM provider_settings WHERE provider = 'twilio' AND "
        "(route_phone = ANY(%s) OR route_service_sid = ANY(%s) OR account_sid = ANY(%s)) "
        "ORDER BY rank, updated_at DESC LIMIT 20",
        (phones, service_sids, phones, service_sids, account_sids),
    )
    return rows


def settings_for_orgs(tx, provider, org_ids):
    # Scoped by the list of candidate organizations a key-less webhook may belong to.
    if not org_ids:
        return []
    return tx.all("SELECT * FROM provider_settings WHERE provider = %s AND org_id = ANY(%s::uuid[])",
                  (provider, [str(o) for o in org_ids]))


def orgs_with_communication(tx, provider, column, values, limit=20):
    """Organizations that configured `provider` and hold a communication whose `column` is one
    of `values`, most recent first (key-less webhook routing). No org filter: this finds the
    organization from the payload; only ids are returned, and the request must then verify with
    that organization's secret."""
    assert column in ("provider_message_id", "message_id", "reply_token", "id")
    if not values:
        return []
    cast = "::uuid[]" if column == "id" else ""
    rows = tx.all(
        f"SELECT c.org_id, max(c.created_at) AS latest FROM communications c "
        f"JOIN provider_settings p ON p.org_id = c.org_id AND p.provider = %s "
        f"WHERE c.{column} = ANY(%s{cast}) GROUP BY c.org_id ORDER BY latest DESC LIMIT %s",
        (provider, list(values), limit),
    )
    return [str(r["org_id"]) for r in rows]


def find_communication(tx, org_id, column, values, direction="outbound"):
    assert column in ("provider_message_id", "message_id", "id")
    if not values:
        return None
    cast = "::uuid[]" if column == "id" else ""
    rows = tx.all(
        f"SELECT {COMM_COLUMNS_ALL} FROM communications WHERE org_id = %s AND {column} = ANY(%s{cast}) "
        "AND direction = %s ORDER BY created_at DESC LIMIT 1",
        (org_id, [str(v) for v in values], direction),
    )
    return rows[0] if rows else None


def lock_communication(tx, org_id, comm_id):
    return tx.one(f"SELECT {COMM_COLUMNS_ALL} FROM communications WHERE org_id = %s AND id = %s "
                  "FOR UPDATE", (org_id, comm_id))


def update_communication(tx, org_id, comm_id, changes):
    if not changes:
        return
    changes = sanitize.deep(changes)
    allowed = {"status", "error", "bounce_type", "provider", "provider_message_id",
               "provider_status", "error_code", "delivered_at", "opened_at", "clicked_at",
               "clicked_url", "complained_at", "duration_seconds", "outcome", "recording",
               "sent_at"}
    cols = [c for c in changes if c in allowed]
    values = [json.dumps(changes[c]) if c == "recording" and changes[c] is not None
              else changes[c] for c in cols]
    sets = ", ".join(f"{c} = %s" for c in cols)
    tx.execute(f"UPDATE communications SET {sets}, updated_at = now() "
               "WHERE org_id = %s AND id = %s", values + [org_id, comm_id])


def latest_outbound_sms(tx, org_id, to_address, from_address):
    """The newest outbound SMS to this number (from our number when known): its thread is the
    conversation of the number pair."""
    return tx.one(
        f"SELECT {COMM_COLUMNS_ALL} FROM communications WHERE org_id = %s AND channel = 'sms' "
        "AND direction = 'outbound' AND to_address = %s "
        "ORDER BY (from_address = %s) DESC, created_at DESC LIMIT 1",
        (org_id, to_address, from_address),
    )


def latest_inbound_sms(tx, org_id, from_address, to_address):
    return tx.one(
        f"SELECT {COMM_COLUMNS_ALL} FROM communications WHERE org_id = %s AND channel = 'sms' "
        "AND direction = 'inbound' AND from_address = %s AND to_address = %s "
        "ORDER BY created_at DESC LIMIT 1",
        (org_id, from_address, to_address),
    )


def provider_event(tx, org_id, dedupe_key):
    return tx.one("SELECT * FROM provider_events WHERE org_id = %s AND dedupe_key = %s",
                  (org_id, sanitize.text(dedupe_key)))


def add_provider_event(tx, org_id, dedupe_key, provider, event_type, communication_id, data,
                       occurred_at=None):
    """True the first time this provider event is seen."""
    row = tx.one(
        "INSERT INTO provider_events (org_id, dedupe_key, provider, event_type, communication_id, "
        "data, occurred_at) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING "
        "RETURNING dedupe_key",
        (org_id, sanitize.text(dedupe_key), provider, sanitize.text(event_type), communication_id,
         json.dumps(sanitize.deep(data)), occurred_at),
    )
    return row is not None


def unmatched_provider_events(tx, org_id, dedupe_keys):
    """Provider events among `dedupe_keys` recorded before their communication could be found."""
    return tx.all("SELECT dedupe_key, data, received_at FROM provider_events WHERE org_id = %s "
                  "AND dedupe_key = ANY(%s) AND communication_id IS NULL",
                  (org_id, list(dedupe_keys)))


def attach_provider_event(tx, org_id, dedupe_key, comm_id):
    tx.execute("UPDATE provider_events SET communication_id = %s WHERE org_id = %s "
               "AND dedupe_key = %s", (comm_id, org_id, dedupe_key))


def communication_events(tx, org_id, comm_id):
    return tx.all("SELECT provider, event_type, data, occurred_at, received_at FROM provider_events "
                  "WHERE org_id = %s AND communication_id = %s ORDER BY occurred_at, received_at",
                  (org_id, comm_id))


def claim_mailgun_token(tx, org_id, token, body_sha256):
    """True when the token is new, or came before with these very bytes (a provider retry)."""
    row = tx.one(
        "INSERT INTO mailgun_tokens (org_id, token, body_sha256) VALUES (%s, %s, %s) "
        "ON CONFLICT (org_id, token) DO UPDATE SET token = EXCLUDED.token "
        "RETURNING body_sha256, (xmax = 0) AS inserted",
        (org_id, token, body_sha256),
    )
    return row["inserted"] or row["body_sha256"] == body_sha256
