"""SQL for the contacts schema. Every query is scoped by org_id; lists page by keyset (id)."""
import json
import uuid


from services.common.errors import Invalid, NotFound

CONTACT_COLUMNS = ("id, name, first_name, last_name, email, phone, phone_extension, timezone, "
                   "active, custom, created_at, updated_at")


def opted_out_sql(channel, identifier_sql, alias="u"):
    """The condition "row `alias` of unsubscribes opts `identifier_sql` out of `channel`", for
    every check that decides whether the platform may send (spec 2.13: `unsubscribed: true`
    means it never sends on that channel). An opt-out in any of the organization's groups counts,
    not only in its default group; a phone-number group's (kept under sms or phone) holds for SMS
    and voice alike. The caller adds `alias.org_id = ...`: with the identifier that probes the
    partial index unsubscribes_opted_out (0005), a handful of rows per address."""
    if channel == "email":
        which = f"{alias}.channel = 'email'"
    else:
        which = (f"({alias}.channel = '{channel}' OR ({alias}.group_id IS NOT NULL"
                 f" AND {alias}.channel IN ('sms', 'phone')))")
    return f"{alias}.unsubscribed AND {alias}.identifier = {identifier_sql} AND {which}"


# Per-channel consent of a contact, read from the identifier-keyed unsubscribes table.
UNSUB_SQL = f"""
  EXISTS (SELECT 1 FROM unsubscribes u WHERE u.org_id = c.org_id
          AND {opted_out_sql('email', 'c.email')}) AS unsub_email,
  EXISTS (SELECT 1 FROM unsubscribes u WHERE u.org_id = c.org_id
          AND {opted_out_sql('sms', 'c.phone')}) AS unsub_sms,
  EXISTS (SELECT 1 FROM unsubscribes u WHERE u.org_id = c.org_id
          AND {opted_out_sql('phone', 'c.phone')}) AS unsub_phone,
  (SELECT jsonb_build_object('at', b.bounced_at, 'diagnostic', b.diagnostic) FROM undeliverable b
   WHERE b.org_id = c.org_id AND b.channel = 'email' AND b.identifier = c.email) AS email_bounce
"""


def new_id():
    return uuid.uuid4()


class ContactStore:
    def __init__(self, tx, org_id):
        self.tx, self.org_id = tx, org_id

    def link_tags(self, links, strict=False):
        """links: [(contact_id, [titles])]: creates missing contact tags, then links them.
        `strict` (a person naming tags): an inactive tag the contact does not carry yet answers
        Invalid naming it instead of being left out."""
        if not links:
            return
        titles = {}
        for _, ts in links:
            for t in ts:
                titles.setdefault(t.lower(), t)
        ids = self.ensure_tags(list(titles.values()))
        if strict:
            inactive = [t for key, t in titles.items() if key not in ids]
            carried = {r["key"] for r in self.tx.all(
                "SELECT lower(t.title) AS key FROM contact_tags ct JOIN tags t ON t.id = ct.tag_id"
                " WHERE ct.org_id = %s AND ct.contact_id = ANY(%s::uuid[])",
                (self.org_id, [str(cid) for cid, _ in links]))}
            refused = [t for t in inactive if t.lower() not in carried]
            if refused:
                raise Invalid("inactive tag", errors={"tags": [
                    f"tag {t!r} is inactive and cannot be newly applied" for t in refused]})
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

    def count_contacts(self):
        # An index-only scan of contacts_org_id: no row is read, nothing is serialized.
        return self.tx.one("SELECT count(*) AS n FROM contacts WHERE org_id = %s",
                           (self.org_id,))["n"]

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


def dumps(value):
    return json.dumps(value, default=str)
