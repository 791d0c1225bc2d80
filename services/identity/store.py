"""SQL for the identity schema. Every function takes the transaction first; rows come back as dicts.

Writes to organization data name the organization (`org_id`) next to the row's id; writes to a
user's own rows (sessions) name the user. Unique columns are written with ON CONFLICT (or a
savepoint that turns the unique violation into an answer), so concurrent requests that compete
for a slug, an email, a membership or a client id never end in a 500."""
import contextlib
import json

import psycopg2.errors

ORG_COLUMNS = (
    "id, name, slug, description, default_timezone, default_country, mfa_required, "
    "auto_approve_campaign_emails, auto_approve_response_emails, default_response_campaign_id, "
    "test_recipients, created_at, updated_at"
)
ORG_SETTINGS = (
    "name", "slug", "description", "default_timezone", "default_country", "mfa_required",
    "auto_approve_campaign_emails", "auto_approve_response_emails", "default_response_campaign_id",
)


# --- organizations -----------------------------------------------------------------------------

def insert_organization(tx, org):
    """The new organization, or None when its slug is taken (by a committed or a concurrent
    insert: ON CONFLICT waits for the other transaction, then does nothing)."""
    return tx.one(
        f"INSERT INTO organizations (id, name, slug, description) VALUES (%s, %s, %s, %s) "
        f"ON CONFLICT (slug) DO NOTHING RETURNING {ORG_COLUMNS}",
        (org["id"], org["name"], org["slug"], org["description"]),
    )


def slugs_like(tx, base):
    """Taken slugs that are `base` or `base-<n>` (to pick the next free suffix in one query)."""
    rows = tx.all(
        "SELECT slug FROM organizations WHERE slug = %s OR slug LIKE %s",
        (base, base + "-%"),  # slugs are [a-z0-9-]: nothing to escape
    )
    return {r["slug"] for r in rows}


def organization(tx, org_id, for_update=False):
    lock = " FOR UPDATE" if for_update else ""
    return tx.one(f"SELECT {ORG_COLUMNS} FROM organizations WHERE id = %s{lock}", (org_id,))


def slug_taken(tx, slug, except_org_id=None):
    return tx.one(
        "SELECT 1 FROM organizations WHERE slug = %s AND id IS DISTINCT FROM %s",
        (slug, except_org_id),
    ) is not None


class SlugTaken(Exception):
    """A concurrent transaction took the slug between the check and the update."""


@contextlib.contextmanager
def _savepoint(tx, name):
    """Runs the block in a savepoint; a unique violation rolls back only the block (the
    transaction stays usable) and is re-raised for the caller to turn into an answer."""
    tx.execute(f"SAVEPOINT {name}")
    try:
        yield
    except psycopg2.errors.UniqueViolation:
        tx.execute(f"ROLLBACK TO SAVEPOINT {name}")
        raise
    tx.execute(f"RELEASE SAVEPOINT {name}")


def update_organization(tx, org_id, changes):
    """SlugTaken when another organization holds the new slug (even one committed meanwhile)."""
    cols = [c for c in ORG_SETTINGS if c in changes]
    if not cols:
        return organization(tx, org_id)
    sets = ", ".join(f"{c} = %s" for c in cols)
    try:
        with _savepoint(tx, "org_update"):
            return tx.one(
                f"UPDATE organizations SET {sets}, updated_at = now() WHERE id = %s "
                f"RETURNING {ORG_COLUMNS}",
                [changes[c] for c in cols] + [org_id],
            )
    except psycopg2.errors.UniqueViolation:
        raise SlugTaken()


def set_test_recipients(tx, org_id, recipients):
    return tx.one(
        f"UPDATE organizations SET test_recipients = %s, updated_at = now() WHERE id = %s "
        f"RETURNING {ORG_COLUMNS}",
        (json.dumps(recipients) if recipients is not None else None, org_id),
    )


def first_owner(tx, org_id):
    return tx.one(
        "SELECT u.id, u.email, u.name FROM memberships m JOIN users u ON u.id = m.user_id "
        "WHERE m.org_id = %s AND m.role = 'owner' ORDER BY m.created_at, u.id LIMIT 1",
        (org_id,),
    )


# --- users -------------------------------------------------------------------------------------

USER_COLUMNS = ("id, email, name, password_hash, totp_secret, totp_enabled, totp_last_step, "
                "recovery_codes, created_at")


def insert_user(tx, user):
    return tx.one(
        f"INSERT INTO users (id, email, name, password_hash) VALUES (%s, %s, %s, %s) "
        f"ON CONFLICT (email) DO NOTHING RETURNING {USER_COLUMNS}",
        (user["id"], user["email"], user["name"], user["password_hash"]),
    )


def user_by_email(tx, email):
    return tx.one(f"SELECT {USER_COLUMNS} FROM users WHERE email = %s", (email,))


def user(tx, user_id, for_update=False):
    lock = " FOR UPDATE" if for_update else ""
    return tx.one(f"SELECT {USER_COLUMNS} FROM users WHERE id = %s{lock}", (user_id,))


def update_user(tx, user_id, **changes):
    cols = list(changes)
    sets = ", ".join(f"{c} = %s" for c in cols)
    values = [json.dumps(v) if c == "recovery_codes" else v for c, v in changes.items()]
    return tx.one(
        f"UPDATE users SET {sets}, updated_at = now() WHERE id = %s RETURNING {USER_COLUMNS}",
        values + [user_id],
    )


# --- memberships -------------------------------------------------------------------------------

def insert_membership(tx, org_id, user_id, role):
    return tx.one(
        "INSERT INTO memberships (org_id, user_id, role) VALUES (%s, %s, %s) "
        "ON CONFLICT DO NOTHING RETURNING org_id, user_id, role, locked, created_at",
        (org_id, user_id, role),
    )


def memberships_of_user(tx, user_id):
    """Every organization the user belongs to, with the role and lock, oldest first."""
    return tx.all(
        "SELECT m.org_id, o.name, o.slug, m.role, m.locked, o.mfa_required FROM memberships m "
        "JOIN organizations o ON o.id = m.org_id WHERE m.user_id = %s ORDER BY m.created_at, o.id",
        (user_id,),
    )


def membership(tx, org_id, user_id, for_update=False):
    lock = " FOR UPDATE OF m" if for_update else ""
    return tx.one(
        "SELECT m.org_id, m.user_id, m.role, m.locked, m.created_at, u.email, u.name "
        "FROM memberships m JOIN users u ON u.id = m.user_id "
        f"WHERE m.org_id = %s AND m.user_id = %s{lock}",
        (org_id, user_id),
    )


def team(tx, org_id):
    return tx.all(
        "SELECT m.user_id, u.email, u.name, m.role, m.locked, m.created_at, u.totp_enabled "
        "FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.org_id = %s "
        "ORDER BY m.created_at, u.id",
        (org_id,),
    )


def active_owner_count(tx, org_id):
    # Lock the owners' rows so two admins cannot demote the last two owners at once.
    rows = tx.all(
        "SELECT user_id FROM memberships WHERE org_id = %s AND role = 'owner' AND NOT locked "
        "FOR UPDATE",
        (org_id,),
    )
    return len(rows)


def update_membership(tx, org_id, user_id, **changes):
    sets = ", ".join(f"{c} = %s" for c in changes)
    return tx.one(
        f"UPDATE memberships SET {sets} WHERE org_id = %s AND user_id = %s "
        "RETURNING org_id, user_id, role, locked, created_at",
        list(changes.values()) + [org_id, user_id],
    )


def delete_membership(tx, org_id, user_id):
    tx.execute("DELETE FROM memberships WHERE org_id = %s AND user_id = %s", (org_id, user_id))


# --- sessions ----------------------------------------------------------------------------------

SESSION_COLUMNS = ("id, user_id, kind, active_org_id, mfa_verified, address, user_agent, "
                   "created_at, last_used_at, expires_at, revoked_at")


def insert_session(tx, s):
    return tx.one(
        "INSERT INTO sessions (id, user_id, token_hash, kind, active_org_id, mfa_verified, address, "
        "user_agent, expires_at) VALUES (%(id)s, %(user_id)s, %(token_hash)s, %(kind)s, "
        "%(active_org_id)s, %(mfa_verified)s, %(address)s, %(user_agent)s, %(expires_at)s) "
        f"RETURNING {SESSION_COLUMNS}",
        s,
    )


def session_by_token(tx, token_hash):
    return tx.one(f"SELECT {SESSION_COLUMNS} FROM sessions WHERE token_hash = %s", (token_hash,))


def touch_session(tx, session_id):
    # Only bump last_used_at once a minute: a write per request would dominate token checks.
    tx.execute(
        "UPDATE sessions SET last_used_at = now() WHERE id = %s "
        "AND last_used_at < now() - interval '1 minute'",
        (session_id,),
    )


def set_active_org(tx, user_id, session_id, org_id):
    tx.execute("UPDATE sessions SET active_org_id = %s WHERE id = %s AND user_id = %s",
               (org_id, session_id, user_id))


def mark_mfa_verified(tx, user_id, session_id):
    tx.execute("UPDATE sessions SET mfa_verified = true WHERE id = %s AND user_id = %s",
               (session_id, user_id))


def end_challenge(tx, user_id, session_id):
    tx.execute(
        "UPDATE sessions SET revoked_at = now() WHERE id = %s AND user_id = %s "
        "AND kind = 'mfa_challenge' AND revoked_at IS NULL",
        (session_id, user_id),
    )


def challenge_failed(tx, user_id, session_id, limit):
    """Count one wrong code against the challenge; revoke it at `limit`. Returns the count."""
    row = tx.one(
        "UPDATE sessions SET failed_codes = failed_codes + 1, "
        "revoked_at = CASE WHEN failed_codes + 1 >= %s THEN now() ELSE revoked_at END "
        "WHERE id = %s AND user_id = %s AND kind = 'mfa_challenge' RETURNING failed_codes",
        (limit, session_id, user_id),
    )
    return row["failed_codes"] if row else limit


def sessions_of_user(tx, user_id):
    return tx.all(
        f"SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = %s AND kind = 'session' "
        "AND revoked_at IS NULL AND expires_at > now() ORDER BY created_at DESC, id",
        (user_id,),
    )


def revoke_session(tx, user_id, session_id):
    return tx.one(
        "UPDATE sessions SET revoked_at = now() WHERE id = %s AND user_id = %s "
        "AND revoked_at IS NULL RETURNING id",
        (session_id, user_id),
    )


def revoke_sessions_of_user(tx, user_id, except_session_id=None):
    tx.execute(
        "UPDATE sessions SET revoked_at = now() WHERE user_id = %s AND revoked_at IS NULL "
        "AND id IS DISTINCT FROM %s",
        (user_id, except_session_id),
    )


# --- sign-in attempts and rate limits ----------------------------------------------------------

def lock_sign_ins(tx, email):
    """Serialize the sign-in checks of one account until this transaction ends. An advisory lock
    keyed on the (normalised) email rather than the user row, so unknown emails are covered too;
    64-bit hashing keeps unrelated accounts from sharing a lock in practice."""
    tx.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
               ("identity.sign_in:" + email,))


def record_attempt(tx, email, address, succeeded):
    tx.execute(
        "INSERT INTO sign_in_attempts (email, address, succeeded) VALUES (%s, %s, %s)",
        (email, address, succeeded),
    )


def recent_failures(tx, column, value, window_seconds):
    """(count, seconds since the oldest counted failure) of failures in the window."""
    assert column in ("email", "address")
    row = tx.one(
        f"SELECT count(*) AS n, extract(epoch FROM now() - min(at)) AS oldest_age "
        f"FROM sign_in_attempts WHERE {column} = %s AND NOT succeeded "
        f"AND at > now() - make_interval(secs => %s)",
        (value, window_seconds),
    )
    return row["n"], float(row["oldest_age"] or 0)


def clear_failures(tx, email):
    # A completed sign-in forgives the account's earlier failures (not the address's).
    tx.execute("DELETE FROM sign_in_attempts WHERE email = %s AND NOT succeeded", (email,))


def hits(tx, bucket, window_seconds):
    """(hits in the window, oldest hit's age) without recording one (a cheap pre-check)."""
    row = tx.one(
        "SELECT count(*) AS n, extract(epoch FROM now() - min(at)) AS oldest_age FROM rate_hits "
        "WHERE bucket = %s AND at > now() - make_interval(secs => %s)",
        (bucket, window_seconds),
    )
    return row["n"], float(row["oldest_age"] or 0)


def hit(tx, bucket, window_seconds):
    """Record one hit and return (hits in the window including this one, oldest hit's age)."""
    tx.execute("DELETE FROM rate_hits WHERE bucket = %s AND at <= now() - make_interval(secs => %s)",
               (bucket, window_seconds))
    tx.execute("INSERT INTO rate_hits (bucket) VALUES (%s)", (bucket,))
    row = tx.one(
        "SELECT count(*) AS n, extract(epoch FROM now() - min(at)) AS oldest_age FROM rate_hits "
        "WHERE bucket = %s",
        (bucket,),
    )
    return row["n"], float(row["oldest_age"] or 0)


# --- API clients and tokens --------------------------------------------------------------------

CLIENT_COLUMNS = "id, client_id, secret_hash, name, org_ids, default_org_id, created_by, created_at, revoked_at"


def insert_client(tx, c):
    """The new client, or None when its client_id is taken (the caller draws another)."""
    return tx.one(
        "INSERT INTO api_clients (id, client_id, secret_hash, name, org_ids, default_org_id, "
        "created_by) VALUES (%(id)s, %(client_id)s, %(secret_hash)s, %(name)s, %(org_ids)s::uuid[], "
        f"%(default_org_id)s, %(created_by)s) ON CONFLICT (client_id) DO NOTHING "
        f"RETURNING {CLIENT_COLUMNS}",
        c,
    )


def client_by_client_id(tx, client_id):
    return tx.one(f"SELECT {CLIENT_COLUMNS} FROM api_clients WHERE client_id = %s", (client_id,))


def clients_of_org(tx, org_id):
    return tx.all(
        f"SELECT {CLIENT_COLUMNS} FROM api_clients WHERE %s = ANY(org_ids) ORDER BY created_at DESC, id",
        (org_id,),
    )


def client_in_org(tx, org_id, pk, for_update=False):
    lock = " FOR UPDATE" if for_update else ""
    return tx.one(
        f"SELECT {CLIENT_COLUMNS} FROM api_clients WHERE id = %s AND %s = ANY(org_ids){lock}",
        (pk, org_id),
    )


def remove_client_org(tx, org_id, pk):
    """Take `org_id` out of the client's scope (the default moves to the first remaining
    organization); None when the client does not cover `org_id`."""
    return tx.one(
        "UPDATE api_clients SET org_ids = array_remove(org_ids, %(org)s::uuid), "
        "default_org_id = CASE WHEN default_org_id = %(org)s::uuid "
        "THEN (array_remove(org_ids, %(org)s::uuid))[1] ELSE default_org_id END "
        "WHERE id = %(pk)s AND %(org)s::uuid = ANY(org_ids) AND cardinality(org_ids) > 1 "
        f"RETURNING {CLIENT_COLUMNS}",
        {"org": org_id, "pk": pk},
    )


def revoke_client(tx, org_id, pk):
    """Revoke the client (and every token of it) through an organization it covers; None when
    it does not cover `org_id`."""
    row = tx.one(
        "UPDATE api_clients SET revoked_at = coalesce(revoked_at, now()) "
        f"WHERE id = %s AND %s = ANY(org_ids) RETURNING {CLIENT_COLUMNS}",
        (pk, org_id),
    )
    if row is not None:
        revoke_client_tokens(tx, pk)
    return row


def insert_token(tx, t):
    tx.execute(
        "INSERT INTO api_tokens (id, client_pk, kind, token_hash, expires_at) "
        "VALUES (%(id)s, %(client_pk)s, %(kind)s, %(token_hash)s, %(expires_at)s)",
        t,
    )


def token_by_hash(tx, token_hash, for_update=False):
    lock = " FOR UPDATE OF t" if for_update else ""
    return tx.one(
        "SELECT t.id, t.client_pk, t.kind, t.expires_at, t.used_at, t.revoked_at, "
        "c.client_id, c.org_ids, c.default_org_id, c.created_by, c.revoked_at AS client_revoked_at "
        "FROM api_tokens t JOIN api_clients c ON c.id = t.client_pk "
        f"WHERE t.token_hash = %s{lock}",
        (token_hash,),
    )


def managed_scope(tx, user_id, org_ids):
    """The organizations among `org_ids` that `user_id` still manages (an unlocked owner or admin
    membership), in the order given; [] for no user (the creator's account was deleted)."""
    if user_id is None or not org_ids:
        return []
    rows = tx.all(
        "SELECT org_id FROM memberships WHERE user_id = %s AND org_id = ANY(%s::uuid[]) "
        "AND role IN ('owner', 'admin') AND NOT locked",
        (user_id, [str(o) for o in org_ids]),
    )
    managed = {str(r["org_id"]) for r in rows}
    return [str(o) for o in org_ids if str(o) in managed]


def mark_token_used(tx, token_pk):
    tx.execute("UPDATE api_tokens SET used_at = now() WHERE id = %s", (token_pk,))


def revoke_client_tokens(tx, client_pk):
    tx.execute(
        "UPDATE api_tokens SET revoked_at = now() WHERE client_pk = %s AND revoked_at IS NULL",
        (client_pk,),
    )


# --- audit log ---------------------------------------------------------------------------------

def insert_audit(tx, entry):
    tx.execute(
        "INSERT INTO audit_log (org_id, actor_user_id, actor_email, action, target_type, target_id, "
        "before, after) VALUES (%(org_id)s, %(actor_user_id)s, %(actor_email)s, %(action)s, "
        "%(target_type)s, %(target_id)s, %(before)s, %(after)s)",
        dict(entry, before=_json(entry.get("before")), after=_json(entry.get("after"))),
    )


def audit_page(tx, org_id, before_id, limit):
    # Keyset on the primary key, newest first (index audit_log_org).
    return tx.all(
        "SELECT id, org_id, actor_user_id, actor_email, action, target_type, target_id, before, "
        "after, at FROM audit_log WHERE org_id = %s AND (%s::bigint IS NULL OR id < %s) "
        "ORDER BY id DESC LIMIT %s",
        (org_id, before_id, before_id, limit),
    )


def _json(value):
    return None if value is None else json.dumps(value, default=str)


def purge_expired(tx):
    """Old rows nobody needs any more (safe to run on every replica at once)."""
    tx.execute("DELETE FROM sign_in_attempts WHERE at < now() - interval '1 day'")
    tx.execute("DELETE FROM rate_hits WHERE at < now() - interval '1 hour'")
    tx.execute("DELETE FROM sessions WHERE expires_at < now() - interval '30 days'")
    tx.execute("DELETE FROM api_tokens WHERE expires_at < now() - interval '30 days'")
