"""Running one import set-based (in the import worker process, never under eventlet): the file is
read chunk by chunk, each record normalised (importer.candidate) and deduplicated inside the file
on its keys (only the keys are kept in memory), and COPYed into a temporary staging table; then a
handful of set-based statements merge the staged records into contacts, tags and unsubscribes and
write every record's outcome. All in the caller's transaction: a bad file (or a crash) leaves
nothing half-written.

Outcomes (docs/contacts.md): inside the file the first record wins and later records of the same
person fill its gaps (they are `merged`); against contacts that existed before, the merged values
overwrite (non-empty only), and `updated`/`unchanged` say whether anything (a value, a tag, an
unsubscribe) was new. No nameko here."""
import collections
import csv
import io
import json

from services.contacts import importer, reader

STAGE_BATCH = 5000
IN_FLIGHT = 4          # batches handed to the normalising processes and not yet staged
PARALLEL_BYTES = 1 << 20  # uploads from this size normalise in the worker's process pool

STAGE_SQL = """
CREATE TEMP TABLE import_stage (
    record integer NOT NULL, grp integer NOT NULL, email text, phone text, phone_extension text,
    name text, first_name text, last_name text, timezone text, custom jsonb, tags text[],
    unsub text[], warnings jsonb) ON COMMIT DROP
"""
STAGE_COPY = ("COPY import_stage (record, grp, email, phone, phone_extension, name, first_name,"
              " last_name, timezone, custom, tags, unsub, warnings) FROM STDIN WITH (FORMAT csv)")
REJECT_COPY = ("COPY import_rows (import_id, record, outcome, reason, warnings)"
               " FROM STDIN WITH (FORMAT csv)")
SCALARS = ("email", "phone", "phone_extension", "name", "first_name", "last_name", "timezone")


def _array(items):
    """A PostgreSQL text[] literal (CSV-quoted later by the csv writer)."""
    return "{" + ",".join('"' + t.replace("\\", "\\\\").replace('"', '\\"') + '"'
                          for t in items) + "}"


_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _json(value):
    return _encode(value)


def _tail(c, writer, buf):
    """The CSV text of a candidate's staged columns after record and grp (e-mail ... warnings)."""
    v = c.values
    buf.seek(0)
    buf.truncate()
    writer.writerow((v.get("email"), v.get("phone"), v.get("phone_extension"), v.get("name"),
                     v.get("first_name"), v.get("last_name"), v.get("timezone"),
                     _json(c.custom) if c.custom else None,
                     _array(c.tags) if c.tags else None,
                     _array(sorted(c.unsubscribe)) if c.unsubscribe else None,
                     _json(c.warnings) if c.warnings else None))
    return buf.getvalue()


def normalise(batch, columns, plan):
    """CPU only, runs in any process: [(number, values)] -> [(number, email, phone, tail)] for
    candidates and [(number, reason, warnings_json)] for rejections."""
    out = []
    buf = io.StringIO()
    writer = csv.writer(buf)
    candidate, Rejection, record_of = importer.candidate, importer.Rejection, reader.record_of
    for number, values in batch:
        c = candidate(number, record_of(columns, values), plan)
        if isinstance(c, Rejection):
            out.append((number, c.reason, _json(c.warnings) if c.warnings else None))
        else:
            out.append((number, c.values.get("email"), c.values.get("phone"), _tail(c, writer, buf)))
    return out


# The import worker's normalising processes (multiprocessing, forked before any thread or
# connection exists) get the job's columns and plan with each batch.
def _normalise_task(args):
    batch, columns, mapping, defaults = args
    return normalise(batch, columns, _plan(_freeze(mapping), _freeze(defaults)))


_PLANS = {}


def _freeze(d):
    return json.dumps(d, sort_keys=True)


def _plan(mapping_json, defaults_json):
    key = (mapping_json, defaults_json)
    if key not in _PLANS:
        _PLANS.clear()
        _PLANS[key] = importer.Plan(json.loads(mapping_json), json.loads(defaults_json))
    return _PLANS[key]


class Stager:
    """Deduplicates normalised records inside the file (first record of each e-mail / phone; only
    the keys stay in memory) and COPYs them into the staging table in batches. Normalising runs
    here, or in `pool` (a multiprocessing pool) for big files, a few batches in flight at most."""

    def __init__(self, cur, import_id, mapping, defaults, on_progress=None, pool=None):
        self.cur = cur
        self.import_id = str(import_id)
        self.mapping, self.defaults = mapping, defaults
        self.plan = importer.Plan(mapping, defaults)
        self.on_progress = on_progress
        self.pool = pool
        self.first_by_email = {}
        self.first_by_phone = {}
        self.records = 0
        self.rejected = 0
        self.merged = 0

    def feed(self, table):
        self.cur.execute(STAGE_SQL)
        for normalised in self._normalised(table):
            self._stage(normalised)
        return self.records

    def _batches(self, table):
        batch = []
        for item in table.value_rows():
            batch.append(item)
            if len(batch) >= STAGE_BATCH:
                yield batch
                batch = []
        if batch:
            yield batch

    def _normalised(self, table):
        columns = table.columns
        if self.pool is None:
            for batch in self._batches(table):
                yield normalise(batch, columns, self.plan)
            return
        in_flight = collections.deque()
        for batch in self._batches(table):
            in_flight.append(self.pool.apply_async(
                _normalise_task, ((batch, columns, self.mapping, self.defaults),)))
            if len(in_flight) >= IN_FLIGHT:
                yield in_flight.popleft().get()
        while in_flight:
            yield in_flight.popleft().get()

    def _stage(self, normalised):
        by_email, by_phone = self.first_by_email, self.first_by_phone
        stage, rejects = io.StringIO(), io.StringIO()
        reject = csv.writer(rejects).writerow
        write = stage.write
        import_id = self.import_id
        for item in normalised:
            if len(item) == 3:  # (number, reason, warnings): rejected
                reject((import_id, item[0], "rejected", item[1], item[2]))
                self.rejected += 1
                continue
            number, email, phone, tail = item
            # Same person as an earlier record: by e-mail, else (no e-mail) by phone.
            first = by_email.get(email) if email else by_phone.get(phone) if phone else None
            if email:
                by_email.setdefault(email, number)
            if phone:
                by_phone.setdefault(phone, number)
            if first:
                self.merged += 1
            write(f"{number},{first or number},{tail}")
        if stage.tell():
            stage.seek(0)
            self.cur.copy_expert(STAGE_COPY, stage)
        if rejects.tell():
            rejects.seek(0)
            self.cur.copy_expert(REJECT_COPY, rejects)
        self.records += len(normalised)
        if self.on_progress and normalised:
            self.on_progress(self.records)


def _first(field):
    return (f"(array_agg(s.{field} ORDER BY s.record) FILTER (WHERE s.{field} IS NOT NULL))[1]"
            f" AS {field}")


def _changed(g, c):
    """SQL: the file's merged values would change contact `c` (non-empty values overwrite; an
    e-mail is never replaced; custom keys merge)."""
    return ("(" + " OR ".join(f"({g}.{f} IS NOT NULL AND {g}.{f} IS DISTINCT FROM {c}.{f})"
                              for f in SCALARS if f != "email")
            + f" OR ({c}.email IS NULL AND {g}.email IS NOT NULL)"
            + f" OR ({c}.custom || {g}.custom) <> {c}.custom)")


def _ident(g, c, ch):
    return (f"(CASE {ch} WHEN 'email' THEN COALESCE({c}.email, {g}.email)"
            f" ELSE COALESCE({g}.phone, {c}.phone) END)")


# A time-ordered (version 7 layout) id for new contacts: consecutive inserts land next to each
# other in the id indexes instead of all over them, which keeps a 100,000-row insert cheap.
NEW_ID = ("(lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0')"
          " || '7' || substr(h.h, 1, 3) || '8' || substr(h.h, 4, 15))::uuid")

# Groups with more than one record: the first non-empty value of each field by record order,
# custom keys likewise, tags and unsubscribes added up.
FILL_SQL = f"""
CREATE TEMP TABLE import_fill ON COMMIT DROP AS
SELECT s.grp, {", ".join(_first(f) for f in SCALARS)},
  (SELECT COALESCE(jsonb_object_agg(k, v), '{{}}'::jsonb) FROM (
     SELECT DISTINCT ON (e.key) e.key AS k, e.value AS v
     FROM import_stage s2, jsonb_each(s2.custom) e
     WHERE s2.grp = s.grp ORDER BY e.key, s2.record) x) AS custom,
  (SELECT array_agg(t ORDER BY r, o) FROM (
     SELECT DISTINCT ON (u.t) u.t, s2.record AS r, u.o
     FROM import_stage s2, unnest(s2.tags) WITH ORDINALITY u(t, o)
     WHERE s2.grp = s.grp ORDER BY u.t, s2.record, u.o) x) AS tags,
  (SELECT array_agg(DISTINCT ch ORDER BY ch) FROM import_stage s2, unnest(s2.unsub) ch
     WHERE s2.grp = s.grp) AS unsub
FROM import_stage s
WHERE s.grp IN (SELECT DISTINCT grp FROM import_stage WHERE record <> grp)
GROUP BY s.grp
"""

GROUPS_SQL = """
CREATE TEMP TABLE import_groups ON COMMIT DROP AS
SELECT record AS grp, email, phone, phone_extension, name, first_name, last_name, timezone,
       COALESCE(custom, '{}'::jsonb) AS custom, tags, unsub
FROM import_stage WHERE record = grp
"""
GROUPS_FILLED_SQL = f"""
CREATE TEMP TABLE import_groups ON COMMIT DROP AS
SELECT s.record AS grp,
       {", ".join(f"CASE WHEN f.grp IS NULL THEN s.{x} ELSE f.{x} END AS {x}" for x in SCALARS)},
       CASE WHEN f.grp IS NULL THEN COALESCE(s.custom, '{{}}'::jsonb) ELSE f.custom END AS custom,
       CASE WHEN f.grp IS NULL THEN s.tags ELSE f.tags END AS tags,
       CASE WHEN f.grp IS NULL THEN s.unsub ELSE f.unsub END AS unsub
FROM import_stage s LEFT JOIN import_fill f ON f.grp = s.record
WHERE s.record = s.grp
"""

MERGE_SQL = [
    # Against what the database holds: by e-mail, else (no e-mail) by phone (the oldest such).
    """CREATE TEMP TABLE import_existing ON COMMIT DROP AS
       SELECT g.grp, c.id, c.name, c.first_name, c.last_name, c.email, c.phone,
              c.phone_extension, c.timezone, c.custom
       FROM import_groups g JOIN contacts c ON c.org_id = %(org)s AND c.email = g.email
       UNION ALL
       SELECT g.grp, m.id, m.name, m.first_name, m.last_name, m.email, m.phone,
              m.phone_extension, m.timezone, m.custom
       FROM import_groups g JOIN (
         SELECT DISTINCT ON (c.phone) c.* FROM contacts c
         WHERE c.org_id = %(org)s AND c.phone IN (SELECT phone FROM import_groups
                                                  WHERE email IS NULL AND phone IS NOT NULL)
         ORDER BY c.phone, c.created_at, c.id) m ON g.email IS NULL AND m.phone = g.phone""",
    # Each person's contact and outcome: created, or updated / unchanged (a value, a tag or an
    # unsubscribe new to the existing contact).
    f"""CREATE TEMP TABLE import_result ON COMMIT DROP AS
       SELECT g.*, COALESCE(c.id, {NEW_ID}) AS contact_id, c.id IS NOT NULL AS existed,
              c.id IS NOT NULL AND {_changed("g", "c")} AS changed,
              CASE WHEN c.id IS NULL THEN 'created'
                   WHEN {_changed("g", "c")}
                     OR (g.tags IS NOT NULL AND EXISTS (
                           SELECT 1 FROM unnest(g.tags) t WHERE lower(t) NOT IN (
                             SELECT lower(tt.title) FROM contact_tags ct
                             JOIN tags tt ON tt.id = ct.tag_id WHERE ct.contact_id = c.id)
                           -- an inactive tag is not applied, so it changes nothing
                           AND lower(t) NOT IN (SELECT lower(it.title) FROM tags it
                             WHERE it.org_id = %(org)s AND it.kind = 'contact' AND NOT it.active)))
                     OR (g.unsub IS NOT NULL AND EXISTS (
                           SELECT 1 FROM unnest(g.unsub) ch
                           WHERE {_ident("g", "c", "ch")} IS NOT NULL AND NOT EXISTS (
                             SELECT 1 FROM unsubscribes u
                             WHERE u.org_id = %(org)s AND u.group_id IS NULL AND u.unsubscribed
                               AND u.channel = ch AND u.identifier = {_ident("g", "c", "ch")})))
                   THEN 'updated' ELSE 'unchanged' END AS outcome
       FROM import_groups g LEFT JOIN import_existing c ON c.grp = g.grp,
            LATERAL (SELECT md5(random()::text || g.grp) AS h) h""",
    # The file's non-empty values overwrite (an e-mail is never replaced); custom keys merge.
    f"""UPDATE contacts c SET
         {", ".join(f"{f} = COALESCE(g.{f}, c.{f})" for f in SCALARS if f != "email")},
         email = COALESCE(c.email, g.email), custom = c.custom || g.custom, updated_at = now()
       FROM (SELECT DISTINCT ON (contact_id) * FROM import_result
             WHERE changed ORDER BY contact_id, grp) g
       WHERE c.id = g.contact_id AND c.org_id = %(org)s""",
    f"""INSERT INTO contacts (id, org_id, {", ".join(SCALARS)}, custom)
       SELECT contact_id, %(org)s, {", ".join(SCALARS)}, custom FROM import_result
       WHERE NOT existed ORDER BY contact_id""",
    # Tags: create the missing ones (first spelling in the file wins), link the active ones.
    """CREATE TEMP TABLE import_tags ON COMMIT DROP AS
       SELECT g.contact_id, u.t AS title, g.grp, u.o
       FROM import_result g, unnest(g.tags) WITH ORDINALITY u(t, o) WHERE g.tags IS NOT NULL""",
    """INSERT INTO tags (id, org_id, kind, title)
       SELECT gen_random_uuid(), %(org)s, 'contact', title FROM (
         SELECT DISTINCT ON (lower(title)) title FROM import_tags
         ORDER BY lower(title), grp, o) x
       ON CONFLICT DO NOTHING""",
    """INSERT INTO contact_tags (tag_id, contact_id, org_id)
       SELECT DISTINCT t.id, it.contact_id, %(org)s::uuid FROM import_tags it
       JOIN tags t ON t.org_id = %(org)s AND t.kind = 'contact' AND t.active
                  AND lower(t.title) = lower(it.title)
       ON CONFLICT DO NOTHING""",
    # Unsubscribes for the contact's (updated) address, with history for each change.
    """WITH pairs AS (
         SELECT DISTINCT ch AS channel,
                CASE ch WHEN 'email' THEN c.email ELSE c.phone END AS identifier
         FROM import_result g JOIN contacts c ON c.id = g.contact_id, unnest(g.unsub) ch
         WHERE g.unsub IS NOT NULL),
       changed AS (
         INSERT INTO unsubscribes (org_id, channel, identifier, group_id, unsubscribed, source)
         SELECT %(org)s, channel, identifier, NULL, true, 'import' FROM pairs
         WHERE identifier IS NOT NULL ORDER BY channel, identifier
         ON CONFLICT (org_id, channel, group_id, identifier) DO UPDATE
         SET unsubscribed = EXCLUDED.unsubscribed, source = EXCLUDED.source, updated_at = now()
         WHERE unsubscribes.unsubscribed IS DISTINCT FROM EXCLUDED.unsubscribed
         RETURNING channel, identifier)
       INSERT INTO unsubscribe_history (org_id, channel, identifier, group_id, unsubscribed,
                                        source, detail)
       SELECT %(org)s, channel, identifier, NULL, true, 'import', NULL FROM changed""",
    # Every record's outcome.
    """INSERT INTO import_rows (import_id, record, outcome, contact_id, merged_into, warnings)
       SELECT %(import_id)s, s.record,
              CASE WHEN s.record = s.grp THEN g.outcome ELSE 'merged' END, g.contact_id,
              CASE WHEN s.record = s.grp THEN NULL ELSE s.grp END, s.warnings
       FROM import_stage s JOIN import_result g ON g.grp = s.grp""",
]


def merge(cur, org_id, import_id, merged_records=True):
    """The set-based part; `merged_records` False (no record repeated an earlier one) skips the
    gap filling."""
    params = {"org": str(org_id), "import_id": str(import_id)}
    if merged_records:
        cur.execute(FILL_SQL)
        cur.execute(GROUPS_FILLED_SQL)
    else:
        cur.execute(GROUPS_SQL)
    for sql in MERGE_SQL:
        cur.execute(sql, params)
    cur.execute("SELECT outcome, count(*) AS n, COALESCE(sum(jsonb_array_length(warnings)), 0) AS w"
                " FROM import_rows WHERE import_id = %s GROUP BY outcome", (str(import_id),))
    counts = {"records": 0, "created": 0, "updated": 0, "unchanged": 0, "merged": 0,
              "rejected": 0, "warnings": 0}
    for row in cur.fetchall():
        outcome, n, w = (row["outcome"], row["n"], row["w"]) if isinstance(row, dict) else row
        counts[outcome] += n
        counts["records"] += n
        counts["warnings"] += int(w)
    return counts


def run(tx, imp, defaults, chunks, on_progress=None, pool=None):
    """Imports `imp` (an imports row) from its upload's chunks inside `tx`; -> counts."""
    cur = tx.cursor()
    stager = Stager(cur, imp["id"], imp["mapping"], defaults, on_progress, pool)
    stager.feed(reader.open_table(chunks))
    return merge(cur, imp["org_id"], imp["id"], stager.merged > 0)
