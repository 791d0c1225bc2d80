"""SQL for the campaigns schema. Every query is scoped by org_id; lists are keyset-paginated on
(created_at DESC, id DESC), which the *_org_created indexes serve without offset scans."""
import base64
import json
import uuid

import psycopg2.errors

from services.common.errors import Invalid

ONE_LIVE_RUN = "runs_one_active_live"  # unique index: one queued/running live run per campaign

# Columns a caller may write, per table (schemas validate the values; this keeps names safe).
COLUMNS = {
    "goals": ("name", "description", "is_starter"),
    "templates": ("channel", "name", "subject", "preheader", "body", "is_starter"),
    "agents": ("type", "name", "title", "model", "provider", "base_url", "api_key_env", "voice",
               "instructions", "is_starter"),
    "campaigns": ("name", "channel", "goal_id", "segment_id", "writer_agent_id",
                  "reviewer_agent_id", "template_id", "instructions", "status", "version",
                  "is_starter"),
}


def new_id():
    return str(uuid.uuid4())


# --- keyset cursors --------------------------------------------------------------------------

def encode_cursor(row):
    raw = f"{row['created_at'].isoformat()}|{row['id']}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor):
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, row_id = raw.split("|", 1)
        uuid.UUID(row_id)
        return created_at, row_id
    except (ValueError, UnicodeDecodeError):
        raise Invalid("invalid cursor", errors={"after": ["not a cursor this API returned"]})


def page(tx, sql_from, where, params, after, limit, select="*"):
    """One keyset page: {items, next_cursor}. `where` is a list of SQL conditions."""
    where = list(where)
    params = list(params)
    if after:
        created_at, row_id = decode_cursor(after)
        where.append("(created_at, id) < (%s::timestamptz, %s::uuid)")
        params += [created_at, row_id]
    sql = (f"SELECT {select} FROM {sql_from} WHERE {' AND '.join(where)} "
           f"ORDER BY created_at DESC, id DESC LIMIT %s")
    rows = tx.all(sql, params + [limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": rows, "next_cursor": encode_cursor(rows[-1]) if more and rows else None}


# --- goals, templates, agents, campaigns -----------------------------------------------------

def insert(tx, table, org_id, values):
    cols = [c for c in COLUMNS[table] if c in values]
    row_id = values.get("id") or new_id()
    sql = (f"INSERT INTO {table} (id, org_id{''.join(', ' + c for c in cols)}) "
           f"VALUES (%s, %s{', %s' * len(cols)}) RETURNING *")
    return tx.one(sql, [row_id, org_id] + [values[c] for c in cols])


def update(tx, table, org_id, row_id, values):
    cols = [c for c in COLUMNS[table] if c in values]
    if not cols:
        return get(tx, table, org_id, row_id)
    sets = ", ".join(f"{c} = %s" for c in cols)
    return tx.one(f"UPDATE {table} SET {sets}, updated_at = now() WHERE org_id = %s AND id = %s "
                  "RETURNING *", [values[c] for c in cols] + [org_id, row_id])


def get(tx, table, org_id, row_id, lock=False):
    return tx.one(f"SELECT * FROM {table} WHERE org_id = %s AND id = %s"
                  + (" FOR UPDATE" if lock else ""), (org_id, row_id))


def delete(tx, table, org_id, row_id):
    return tx.one(f"DELETE FROM {table} WHERE org_id = %s AND id = %s RETURNING id",
                  (org_id, row_id))


def list_rows(tx, table, org_id, filters, after, limit):
    where, params = ["org_id = %s"], [org_id]
    for column, value in filters.items():
        if value is not None:
            where.append(f"{column} = %s")
            params.append(value)
    return page(tx, table, where, params, after, limit)


def campaigns_using(tx, org_id, column, row_id):
    return tx.one(f"SELECT count(*) AS n FROM campaigns WHERE org_id = %s AND {column} = %s",
                  (org_id, row_id))["n"]


def active_campaign_counts(tx, org_id, agent_ids):
    rows = tx.all(
        "SELECT a.id, count(c.id) AS n FROM unnest(%s::uuid[]) AS a(id) "
        "LEFT JOIN campaigns c ON c.org_id = %s AND c.status = 'active' "
        " AND (c.writer_agent_id = a.id OR c.reviewer_agent_id = a.id) GROUP BY a.id",
        (list(agent_ids), org_id))
    return {str(r["id"]): r["n"] for r in rows}


def add_version(tx, campaign_id, version, instructions, user_id):
    tx.execute("INSERT INTO campaign_versions (campaign_id, version, instructions, created_by) "
               "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
               (campaign_id, version, instructions, user_id))


def versions(tx, org_id, campaign_id, limit):
    """The latest `limit` instruction versions of a campaign and how many there are in all
    (campaign_versions has no org_id of its own: scoped through the campaign)."""
    rows = tx.all("SELECT v.version, v.instructions, v.created_by, v.created_at, "
                  " count(*) OVER () AS total "
                  "FROM campaign_versions v JOIN campaigns c ON c.id = v.campaign_id "
                  "WHERE c.org_id = %s AND v.campaign_id = %s ORDER BY v.version DESC LIMIT %s",
                  (org_id, campaign_id, limit))
    total = rows[0].pop("total") if rows else 0
    for r in rows[1:]:
        r.pop("total")
    return rows, total


def runs_of_campaign(tx, org_id, campaign_id, active_only=True, limit=None):
    return tx.all("SELECT id, run_type, status, created_at FROM runs WHERE org_id = %s "
                  "AND campaign_id = %s"
                  + (" AND status IN ('queued', 'running')" if active_only else "")
                  + " ORDER BY created_at DESC" + (" LIMIT %s" if limit else ""),
                  (org_id, campaign_id) + ((limit,) if limit else ()))


def starter(tx, org_id, table):
    return tx.all(f"SELECT * FROM {table} WHERE org_id = %s AND is_starter ORDER BY created_at",
                  (org_id,))


def starter_progress(tx, org_id):
    """The starter campaign's getting-started facts, or None when the organization has none."""
    # runs_campaign (campaign_id, created_at) answers the EXISTS with one index probe.
    return tx.one(
        "SELECT c.id, c.writer_agent_id IS NOT NULL AS writer_selected,"
        " c.reviewer_agent_id IS NOT NULL AS reviewer_selected,"
        " EXISTS (SELECT 1 FROM runs r WHERE r.campaign_id = c.id AND r.org_id = c.org_id"
        "         AND r.run_type = 'test') AS test_run_done"
        " FROM campaigns c WHERE c.org_id = %s AND c.is_starter", (org_id,))


def any_campaign_progress(tx, org_id):
    """The same facts over every campaign of the organization (when the starter is gone)."""
    return tx.one(
        "SELECT EXISTS (SELECT 1 FROM campaigns WHERE org_id = %s AND writer_agent_id IS NOT NULL)"
        "   AS writer_selected,"
        " EXISTS (SELECT 1 FROM campaigns WHERE org_id = %s AND reviewer_agent_id IS NOT NULL)"
        "   AS reviewer_selected,"
        " EXISTS (SELECT 1 FROM runs WHERE org_id = %s AND run_type = 'test') AS test_run_done",
        (org_id, org_id, org_id))


def counts(tx, org_id):
    """How many agents and campaigns the organization has (the *_org_created indexes)."""
    return tx.one("SELECT (SELECT count(*) FROM agents WHERE org_id = %s) AS agents,"
                  " (SELECT count(*) FROM campaigns WHERE org_id = %s) AS campaigns",
                  (org_id, org_id))


# --- runs ------------------------------------------------------------------------------------

def insert_run(tx, org_id, run):
    """The new run, or None when the campaign already has a live run in progress (the
    runs_one_active_live index said so; the savepoint keeps the transaction usable)."""
    tx.execute("SAVEPOINT insert_run")
    try:
        row = tx.one(
            "INSERT INTO runs (id, org_id, campaign_id, channel, run_type, status, segment_id, "
            " version, instructions, snapshot, created_by) "
            "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) RETURNING *",
            (new_id(), org_id, run["campaign_id"], run["channel"], run["run_type"], run["status"],
             run["segment_id"], run["version"], run["instructions"], json.dumps(run["snapshot"]),
             run["created_by"]))
    except psycopg2.errors.UniqueViolation as err:
        tx.execute("ROLLBACK TO SAVEPOINT insert_run")
        if err.diag.constraint_name == ONE_LIVE_RUN:
            return None
        raise
    tx.execute("RELEASE SAVEPOINT insert_run")
    return row


def active_live_run(tx, org_id, campaign_id):
    return tx.one("SELECT id, status, created_at FROM runs WHERE org_id = %s AND campaign_id = %s "
                  "AND run_type = 'live' AND status IN ('queued', 'running') LIMIT 1",
                  (org_id, campaign_id))


def get_run(tx, org_id, run_id, lock=False):
    return get(tx, "runs", org_id, run_id, lock=lock)


def set_run(tx, org_id, run_id, **values):
    sets = "".join(f"{c} = %s, " for c in values)
    return tx.one(f"UPDATE runs SET {sets}updated_at = now() WHERE org_id = %s AND id = %s "
                  "RETURNING *", list(values.values()) + [org_id, run_id])


# --- run leases (one worker on one page of a run at a time) ------------------------------------

def claim_run(tx, org_id, run_id, token, lease, cursor=None, check_cursor=False):
    """Take the run's lease when nobody holds a live one, the run is still paging its audience
    and (for a run_page event) the run still stands at that event's cursor. The run, or None."""
    return tx.one(
        "UPDATE runs SET lease_until = now() + %s::interval, lease_token = %s "
        "WHERE org_id = %s AND id = %s AND status IN ('queued', 'running') "
        "AND NOT audience_exhausted AND (lease_until IS NULL OR lease_until < now())"
        + (" AND cursor IS NOT DISTINCT FROM %s" if check_cursor else "") + " RETURNING *",
        (lease, token, org_id, run_id) + ((cursor,) if check_cursor else ()))


def renew_lease(tx, org_id, run_id, token, lease):
    """Extend our lease; the run's status, or None when the lease is no longer ours."""
    row = tx.one("UPDATE runs SET lease_until = now() + %s::interval WHERE org_id = %s AND id = %s "
                 "AND lease_token = %s RETURNING status", (lease, org_id, run_id, token))
    return row["status"] if row else None


def release_lease(tx, org_id, run_id, token):
    tx.execute("UPDATE runs SET lease_until = NULL, lease_token = NULL "
               "WHERE org_id = %s AND id = %s AND lease_token = %s", (org_id, run_id, token))


def expired_runs(tx, idle, limit=20):
    """Runs still paging their audience that nobody works: the lease expired, or no lease was
    taken for `idle` (the event that should have claimed it was lost). Every organization (the
    sweep is the system's); SKIP LOCKED so replicas sweeping at once never take the same run."""
    return tx.all(
        "SELECT id, org_id, campaign_id, channel, run_type FROM runs "
        "WHERE status IN ('queued', 'running') AND NOT audience_exhausted "
        "AND (lease_until < now() OR (lease_until IS NULL AND updated_at < now() - %s::interval)) "
        "ORDER BY updated_at LIMIT %s FOR UPDATE SKIP LOCKED", (idle, limit))


def list_runs(tx, org_id, filters, after, limit):
    return list_rows(tx, "runs", org_id, filters, after, limit)


def has_open_drafts(tx, org_id, run_id):
    # Index probes on drafts_run_status, one per open status: no count over the run's drafts.
    return tx.one("SELECT EXISTS (SELECT 1 FROM drafts WHERE run_id = %s AND org_id = %s AND "
                  "status IN ('generating', 'pending_approval', 'approved', 'sending')) AS open",
                  (run_id, org_id))["open"]


def run_counts(tx, org_id, run_id):
    # One pass over the run's drafts (drafts_run_status index) plus two small counts.
    row = tx.one(
        "SELECT count(*) AS drafted,"
        " count(*) FILTER (WHERE approved_at IS NOT NULL) AS approved,"
        " count(*) FILTER (WHERE status = 'rejected') AS rejected,"
        " count(*) FILTER (WHERE status = 'sent') AS sent,"
        " count(*) FILTER (WHERE status = 'failed') AS failed,"
        " count(*) FILTER (WHERE status = 'pending_approval') AS pending_approval,"
        " count(*) FILTER (WHERE verdict = 'flag') AS flagged,"
        " count(*) FILTER (WHERE status IN ('generating', 'pending_approval', 'approved', 'sending'))"
        "   AS open,"
        " (SELECT count(*) FROM run_skips WHERE run_id = %s AND org_id = %s) AS skipped,"
        " (SELECT count(*) FROM run_replies WHERE run_id = %s AND org_id = %s) AS replied"
        " FROM drafts WHERE run_id = %s AND org_id = %s",
        (run_id, org_id, run_id, org_id, run_id, org_id))
    counts = dict(row)
    counts["targeted"] = counts["drafted"] + counts["skipped"]
    return counts


def run_skips(tx, org_id, run_id, limit=1000):
    return tx.all("SELECT contact_id, recipient_key, reason FROM run_skips WHERE run_id = %s "
                  "AND org_id = %s ORDER BY created_at, recipient_key LIMIT %s",
                  (run_id, org_id, limit))


def skips_by_reason(tx, org_id, run_id):
    rows = tx.all("SELECT reason, count(*) AS n FROM run_skips WHERE run_id = %s AND org_id = %s "
                  "GROUP BY reason", (run_id, org_id))
    return {r["reason"]: r["n"] for r in rows}


def insert_skips(tx, org_id, run_id, skips):
    if not skips:
        return 0
    return tx.values(
        "INSERT INTO run_skips (run_id, recipient_key, org_id, contact_id, reason) VALUES %s "
        "ON CONFLICT DO NOTHING",
        [(run_id, s["recipient_key"], org_id, s.get("contact_id"), s["reason"]) for s in skips])


def add_reply(tx, org_id, run_id, thread_id, contact_id):
    return tx.one("INSERT INTO run_replies (run_id, thread_id, contact_id, org_id) "
                  "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING run_id",
                  (run_id, thread_id, contact_id, org_id))


# --- drafts ----------------------------------------------------------------------------------

DRAFT_COLUMNS = ("id", "org_id", "run_id", "campaign_id", "channel", "is_test", "recipient_key",
                 "contact_id", "to_address", "to_name", "contact", "subject", "preheader", "body",
                 "status", "verdict", "review_reasons", "error", "approved_at")


def insert_drafts(tx, drafts):
    """Bulk insert; a recipient already drafted in this run is skipped. Returns inserted rows."""
    if not drafts:
        return []
    rows = [tuple(json.dumps(d[c]) if c in ("contact", "review_reasons") else d.get(c)
                  for c in DRAFT_COLUMNS) for d in drafts]
    return tx.values(
        f"INSERT INTO drafts ({', '.join(DRAFT_COLUMNS)}) VALUES %s "
        "ON CONFLICT (run_id, recipient_key) DO NOTHING RETURNING *",
        rows, fetch=True)


def add_history(tx, org_id, entries):
    """entries: [(draft_id, from_status, to_status, actor, note)]."""
    if entries:
        tx.values("INSERT INTO draft_history (draft_id, org_id, from_status, to_status, actor, note) "
                  "VALUES %s", [(e[0], org_id) + tuple(e[1:]) for e in entries])


def history(tx, org_id, draft_id):
    return tx.all("SELECT from_status, to_status, actor, note, at FROM draft_history "
                  "WHERE draft_id = %s AND org_id = %s ORDER BY id", (draft_id, org_id))


def get_draft(tx, org_id, draft_id, lock=False):
    return get(tx, "drafts", org_id, draft_id, lock=lock)


def list_drafts(tx, org_id, filters, after, limit):
    return list_rows(tx, "drafts", org_id, filters, after, limit)


def drafts_by_ids(tx, org_id, draft_ids, lock=True):
    return tx.all("SELECT * FROM drafts WHERE org_id = %s AND id = ANY(%s::uuid[]) ORDER BY id"
                  + (" FOR UPDATE" if lock else ""), (org_id, list(draft_ids)))


def drafted_keys(tx, org_id, run_id, keys):
    if not keys:
        return set()
    return {r["recipient_key"] for r in tx.all(
        "SELECT recipient_key FROM drafts WHERE run_id = %s AND org_id = %s "
        "AND recipient_key = ANY(%s)", (run_id, org_id, list(keys)))}


def set_replied(tx, org_id, run_id, contact_id):
    tx.execute("UPDATE drafts SET replied_at = COALESCE(replied_at, now()) "
               "WHERE run_id = %s AND org_id = %s AND contact_id = %s", (run_id, org_id, contact_id))


def drafts_in_status(tx, org_id, run_id, statuses, limit):
    # SKIP LOCKED: two people approving the same run at once split the work instead of waiting.
    return tx.all("SELECT * FROM drafts WHERE org_id = %s AND run_id = %s AND status = ANY(%s) "
                  "ORDER BY created_at, id LIMIT %s FOR UPDATE SKIP LOCKED",
                  (org_id, run_id, list(statuses), limit))


def set_drafts(tx, org_id, changes):
    """changes: [{id, status, error, communication_id, approved, attempt, content...}] applied in one
    statement (execute_values over an UPDATE ... FROM VALUES) to the organization's drafts only."""
    if not changes:
        return 0
    rows = [(c["id"], str(org_id), c["status"], c.get("error"), c.get("communication_id"),
             bool(c.get("approved")), c.get("subject"), c.get("preheader"), c.get("body"),
             c.get("verdict"), json.dumps(c["review_reasons"]) if "review_reasons" in c else None,
             bool(c.get("retry"))) for c in changes]
    return tx.values(
        "UPDATE drafts d SET status = v.status, error = v.error,"
        " communication_id = COALESCE(v.communication_id, d.communication_id),"
        " approved_at = CASE WHEN v.approved THEN COALESCE(d.approved_at, now())"
        "   WHEN v.retry THEN NULL ELSE d.approved_at END,"
        " subject = COALESCE(v.subject, d.subject), preheader = COALESCE(v.preheader, d.preheader),"
        " body = COALESCE(v.body, d.body), verdict = COALESCE(v.verdict, d.verdict),"
        " review_reasons = COALESCE(v.review_reasons::jsonb, d.review_reasons),"
        " attempt = d.attempt + CASE WHEN v.retry THEN 1 ELSE 0 END,"
        " updated_at = now()"
        " FROM (VALUES %s) AS v(id, org_id, status, error, communication_id, approved, subject,"
        "   preheader, body, verdict, review_reasons, retry)"
        " WHERE d.id = v.id::uuid AND d.org_id = v.org_id::uuid",
        rows, template="(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)")
