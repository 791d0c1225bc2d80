"""SQL for the contacts schema. Every query is scoped by org_id; lists page by keyset (id)."""
import json
import uuid

from psycopg2.extras import Json

from services.common.errors import NotFound

CONTACT_COLUMNS = ("id, name, first_name, last_name, email, phone, phone_extension, timezone, "
                   "active, custom, created_at, updated_at")
# Per-channel consent of a contact, read from the identifier-keyed unsubscribes table.
UNSUB_SQL = """
  EXISTS (SELECT 1 FROM unsubscribes u WHERE u.org_id = c.org_id AND u.group_id IS NULL
          AND u.unsubscribed AND u.channel = 'email' AND u.identifier = c.email) AS unsub_email,
  EXISTS (SELECT 1 FROM unsubscribes u WHERE u.org_id = c.org_id AND u.group_id IS NULL
          AND u.unsubscribed AND u.channel = 'sms' AND u.identifier = c.phone) AS unsub_sms,
  EXISTS (SELECT 1 FROM unsubscribes u WHERE u.org_id = c.org_id AND u.group_id IS NULL
          AND u.unsubscribed AND u.channel = 'phone' AND u.identifier = c.phone) AS unsub_phone
"""


def new_id():
    return uuid.uuid4()


class ContactStore:
    def __init__(self, tx, org_id):
        self.tx, self.org_id = tx, org_id

    # -- import support -------------------------------------------------------------------
    def match_contacts(self, emails, phones):
        """{("e", email) | ("p", phone): row with tag_titles and unsubscribed} for existing ones."""
        found = {}
        if not emails and not phones:
            return found
        rows = self.tx.all(
            f"SELECT c.id, c.name, c.first_name, c.last_name, c.email, c.phone, c.phone_extension,"
            f" c.timezone, c.custom, {UNSUB_SQL},"
            " ARRAY(SELECT lower(t.title) FROM contact_tags ct JOIN tags t ON t.id = ct.tag_id"
            "       WHERE ct.contact_id = c.id) AS tag_titles"
            " FROM contacts c WHERE c.org_id = %s AND (c.email = ANY(%s) OR"
            " (c.phone = ANY(%s)))",
            (self.org_id, emails, phones))
        for r in rows:
            r = _import_row(r)
            if r["email"] and r["email"] in emails:
                found[("e", r["email"])] = r
            if r["phone"] and r["phone"] in phones:
                found.setdefault(("p", r["phone"]), r)
        return found

    def contacts_by_id(self, ids):
        if not ids:
            return {}
        rows = self.tx.all(
            f"SELECT c.id, c.name, c.first_name, c.last_name, c.email, c.phone, c.phone_extension,"
            f" c.timezone, c.custom, {UNSUB_SQL},"
            " ARRAY(SELECT lower(t.title) FROM contact_tags ct JOIN tags t ON t.id = ct.tag_id"
            "       WHERE ct.contact_id = c.id) AS tag_titles"
            " FROM contacts c WHERE c.org_id = %s AND c.id = ANY(%s::uuid[])",
            (self.org_id, [str(i) for i in ids]))
        return {r["id"]: _import_row(r) for r in rows}

    def insert_contacts(self, candidates):
        """New contacts in one statement: the batch travels as one JSON document that
        json_to_recordset unpacks server-side. (COPY would be the usual bulk path, but psycopg2
        refuses COPY under eventlet's wait callback; this costs about the same.)"""
        if not candidates:
            return []
        ids = [new_id() for _ in candidates]
        rows = []
        for i, c in zip(ids, candidates):
            v = c.values
            rows.append({"id": str(i), "name": v.get("name"), "first_name": v.get("first_name"),
                         "last_name": v.get("last_name"), "email": v.get("email"),
                         "phone": v.get("phone"), "phone_extension": v.get("phone_extension"),
                         "timezone": v.get("timezone"), "custom": c.custom})
        self.tx.execute(
            "INSERT INTO contacts (id, org_id, name, first_name, last_name, email, phone,"
            " phone_extension, timezone, custom)"
            " SELECT r.id, %s, r.name, r.first_name, r.last_name, r.email, r.phone,"
            " r.phone_extension, r.timezone, COALESCE(r.custom, '{}'::jsonb)"
            " FROM json_to_recordset(%s::json) AS r (id uuid, name text, first_name text,"
            " last_name text, email text, phone text, phone_extension text, timezone text,"
            " custom jsonb)",
            (self.org_id, json.dumps(rows, ensure_ascii=False)))
        return ids

    def update_contacts(self, updates):
        """updates: [(contact_id, {field: value})]; one statement per batch."""
        if not updates:
            return
        fields = ("name", "first_name", "last_name", "email", "phone", "phone_extension",
                  "timezone")
        rows = []
        for cid, changed in updates:
            rows.append((cid,) + tuple(changed.get(f) for f in fields)
                        + (Json(changed["custom"]) if "custom" in changed else None,))
        sets = ", ".join(f"{f} = COALESCE(v.{f}, c.{f})" for f in fields)
        self._update_rows(sets, rows)

    def _update_rows(self, sets, rows):
        from psycopg2.extras import execute_values
        cur = self.tx.cursor()
        execute_values(
            cur,
            f"UPDATE contacts c SET {sets}, custom = COALESCE(v.custom, c.custom),"
            " updated_at = now()"
            " FROM (VALUES %s) AS v (id, name, first_name, last_name, email, phone,"
            " phone_extension, timezone, custom) WHERE c.id = v.id AND c.org_id = "
            + cur.mogrify("%s", (self.org_id,)).decode(),
            rows, template="(%s::uuid, %s, %s, %s, %s, %s, %s, %s, %s::jsonb)", page_size=1000)

    def link_tags(self, links):
        """links: [(contact_id, [titles])]: creates missing contact tags, then links them."""
        if not links:
            return
        titles = {}
        for _, ts in links:
            for t in ts:
                titles.setdefault(t.lower(), t)
        ids = self.ensure_tags(list(titles.values()))
        rows = {(ids[t.lower()], cid) for cid, ts in links for t in ts if t.lower() in ids}
        self.tx.values(
            "INSERT INTO contact_tags (tag_id, contact_id, org_id) VALUES %s ON CONFLICT DO NOTHING",
            [(tid, cid, self.org_id) for tid, cid in rows])

    def ensure_tags(self, titles, kind="contact"):
        """{lower(title): id} for active tags with these titles, creating missing ones. Inactive
        tags are left out: they cannot be newly applied."""
        if not titles:
            return {}
        self.tx.values(
            "INSERT INTO tags (id, org_id, kind, title) VALUES %s ON CONFLICT DO NOTHING",
            [(new_id(), self.org_id, kind, t) for t in titles])
        rows = self.tx.all(
            "SELECT id, lower(title) AS key FROM tags WHERE org_id = %s AND kind = %s"
            " AND active AND lower(title) = ANY(%s)",
            (self.org_id, kind, [t.lower() for t in titles]))
        return {r["key"]: r["id"] for r in rows}

    def unsubscribe_many(self, pairs, source, unsubscribed=True, group_id=None, detail=None):
        """Set consent for (channel, identifier) pairs and write history. Returns changed rows."""
        if not pairs:
            return []
        rows = self.tx.values(
            "INSERT INTO unsubscribes (org_id, channel, identifier, group_id, unsubscribed, source)"
            " VALUES %s ON CONFLICT (org_id, channel, group_id, identifier) DO UPDATE"
            " SET unsubscribed = EXCLUDED.unsubscribed, source = EXCLUDED.source,"
            "     updated_at = now()"
            " WHERE unsubscribes.unsubscribed IS DISTINCT FROM EXCLUDED.unsubscribed"
            " RETURNING channel, identifier, unsubscribed, updated_at",
            [(self.org_id, ch, ident, group_id, unsubscribed, source) for ch, ident in pairs],
            fetch=True)
        if rows:
            self.tx.values(
                "INSERT INTO unsubscribe_history (org_id, channel, identifier, group_id,"
                " unsubscribed, source, detail) VALUES %s",
                [(self.org_id, r["channel"], r["identifier"], group_id, unsubscribed, source,
                  detail) for r in rows])
        return rows

    def record_outcomes(self, outcomes):
        if not outcomes or not getattr(self, "import_id", None):
            return
        rows = [{"record": o.record, "outcome": o.outcome,
                 "contact_id": str(o.contact_id) if o.contact_id else None, "reason": o.reason,
                 "merged_into": o.merged_into, "warnings": o.warnings or None} for o in outcomes]
        self.tx.execute(
            "INSERT INTO import_rows (import_id, record, outcome, contact_id, reason, merged_into,"
            " warnings) SELECT %s, r.record, r.outcome, r.contact_id, r.reason, r.merged_into,"
            " r.warnings FROM json_to_recordset(%s::json) AS r (record int, outcome text,"
            " contact_id uuid, reason text, merged_into int, warnings jsonb)",
            (str(self.import_id), json.dumps(rows, ensure_ascii=False)))

    # -- contacts ---------------------------------------------------------------------------
    def get_contact(self, contact_id):
        row = self.tx.one(
            f"SELECT {_prefixed()}, {UNSUB_SQL},"
            " ARRAY(SELECT t.title FROM contact_tags ct JOIN tags t ON t.id = ct.tag_id"
            "       WHERE ct.contact_id = c.id ORDER BY t.title) AS tags"
            " FROM contacts c WHERE c.org_id = %s AND c.id = %s",
            (self.org_id, str(contact_id)))
        if row is None:
            raise NotFound("contact not found")
        return row

    def list_contacts(self, where_sql, params, after, limit):
        sql = (f"SELECT {_prefixed()}, {UNSUB_SQL},"
               " ARRAY(SELECT t.title FROM contact_tags ct JOIN tags t ON t.id = ct.tag_id"
               "       WHERE ct.contact_id = c.id ORDER BY t.title) AS tags"
               f" FROM contacts c WHERE c.org_id = %s AND ({where_sql})")
        args = [self.org_id] + list(params)
        if after:
            sql += " AND c.id > %s"
            args.append(after)
        sql += " ORDER BY c.id LIMIT %s"
        args.append(limit)
        return self.tx.all(sql, args)


def _prefixed():
    return ", ".join(f"c.{c.strip()}" for c in CONTACT_COLUMNS.split(","))


def _import_row(r):
    r = dict(r)
    r["unsubscribed"] = {"email": r.pop("unsub_email"), "sms": r.pop("unsub_sms"),
                         "phone": r.pop("unsub_phone")}
    r["tag_titles"] = set(r.get("tag_titles") or [])
    r["custom"] = r.get("custom") or {}
    return r


def dumps(value):
    return json.dumps(value, default=str)
