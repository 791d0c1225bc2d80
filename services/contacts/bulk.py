"""Running one import set-based (in the import worker process, never under eventlet): the file is
read in batches; each record is normalised (importer.staged, in a pool of processes for big
files) and deduplicated inside the file on its keys (only the keys are kept in memory); each
batch is COPYed into a temporary table and written at once: people new to the organization become
contacts with their tags, unsubscribes and outcome while the next batches are normalised. What
needs the whole file (people the database already held, records repeating earlier ones) is kept
and merged set-based at the end. All in the caller's transaction: a bad file (or a crash) leaves
nothing half-written.

Outcomes (docs/contacts.md): inside the file the first record wins and later records of the same
person fill its gaps (they are `merged`); against contacts that existed before, the merged values
overwrite (non-empty only), and `updated`/`unchanged` say whether anything (a value, a tag, an
unsubscribe) was new. No nameko here."""
import collections
import csv
import io
import json
import queue
import random
import threading
import time

from services.contacts import importer, reader

STAGE_BATCH = 5000
IN_FLIGHT = 4          # batches handed to the normalising processes and not yet staged
WRITE_AHEAD = 4        # normalised batches waiting for the writing thread
WRITE_TOGETHER = 4     # queued batches the writing thread writes as one
# Seconds to wait for a batch from the pool (~0.1 s of work): a normalising process that died
# (killed, out of memory) loses its batch, and the import fails instead of waiting forever.
NORMALISE_TIMEOUT = 120
PARALLEL_BYTES = 1 << 20  # uploads from this size normalise in the worker's process pool

SCALARS = ("email", "phone", "phone_extension", "name", "first_name", "last_name", "timezone")
STAGED = ("record", "new_id") + SCALARS + ("custom", "tags", "unsub", "warnings")
# One batch of records as normalised: `grp` is the first record of the same person when the
# record repeats an earlier one, else NULL (nearly every record). `import_stage` keeps, for the
# end, the records whose outcome waits on the whole file: repeats, and first records of people
# the database already held.
STAGE_SQL = """
CREATE TEMP TABLE import_batch (
    record integer NOT NULL, new_id uuid NOT NULL, email text, phone text, phone_extension text,
    name text, first_name text, last_name text, timezone text, custom jsonb, tags text[],
    unsub text[], warnings jsonb, grp integer) ON COMMIT DROP;
CREATE TEMP TABLE import_stage (LIKE import_batch) ON COMMIT DROP;
CREATE TEMP TABLE import_repeats (record integer, grp integer) ON COMMIT DROP;
CREATE TEMP TABLE import_matches (
    grp integer, id uuid, name text, first_name text, last_name text, email text, phone text,
    phone_extension text, timezone text, custom jsonb) ON COMMIT DROP;
CREATE TEMP TABLE import_existing (LIKE import_matches) ON COMMIT DROP;
"""
STAGE_COPY = f"COPY import_batch ({', '.join(STAGED)}) FROM STDIN WITH (FORMAT csv)"
REJECT_COPY = ("COPY import_rows (import_id, record, outcome, reason, warnings)"
               " FROM STDIN WITH (FORMAT csv)")
REPEATS_COPY = "COPY import_repeats (record, grp) FROM STDIN WITH (FORMAT csv)"
COPY_READ = 1 << 18  # characters psycopg2 reads from a COPY's buffer at a time


_VERSION_7 = (0x7 << 76) | (0b10 << 62)


def id_stamp():
    """The time part of an import's new contact ids (the version 7 layout's milliseconds), taken
    once per import."""
    return (int(time.time() * 1000) << 80) | _VERSION_7


def new_id(stamp, number, bits=random.getrandbits):
    """The id record `number` of the import stamped `stamp` gives its contact if it is new: the
    milliseconds, then the record number (32 bits, split around the version and variant bits),
    then 42 random bits. An import's new contacts sort in record order, and land next to each
    other in the id indexes instead of all over them."""
    return (f"{stamp | ((number >> 20) & 0xFFF) << 64 | (number & 0xFFFFF) << 42 | bits(42):032x}")


def normalise(batch, plan, stamp):
    """CPU only, runs in any process: [(number, cells)] -> (the CSV text of the batch's staged
    rows, [(number, e-mail, phone)] of each, [(number, reason, warnings JSON)] of each rejection,
    whether any staged row has tags, whether any has unsubscribes). Each staged row carries the
    id its contact gets if it is new (new_id)."""
    rows, keys, rejected = [], [], []
    staged, Rejection = importer.staged, importer.Rejection
    for number, values in batch:
        row = staged(number, values, plan, new_id(stamp, number))
        if row.__class__ is Rejection:
            rejected.append((number, row.reason,
                             importer.to_json(row.warnings) if row.warnings else None))
        else:
            rows.append(row)
            keys.append((number, row[2], row[3]))
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    return (buf.getvalue(), keys, rejected, any(r[10] for r in rows), any(r[11] for r in rows))


# The import worker's normalising processes (multiprocessing, forked before any thread or
# connection exists) get the job's columns, mapping and defaults with each batch.
def _normalise_task(args):
    batch, columns, mapping, defaults, stamp = args
    return normalise(batch, _plan(_freeze(mapping), _freeze(defaults), tuple(columns)), stamp)


_PLANS = {}


def _freeze(d):
    return json.dumps(d, sort_keys=True)


def _plan(mapping_json, defaults_json, columns):
    key = (mapping_json, defaults_json, columns)
    if key not in _PLANS:
        _PLANS.clear()
        _PLANS[key] = importer.Plan(json.loads(mapping_json), json.loads(defaults_json), columns)
    return _PLANS[key]


class Stager:
    """Reads the file in batches, has them normalised (here, or in `pool`, a multiprocessing pool,
    for big files, a few batches in flight at most), deduplicates records inside the file (first
    record of each e-mail / phone; only the keys stay in memory) and writes each batch as it
    comes (write_batch): new people become contacts there and then, while the next batches are
    read and normalised; what needs the whole file waits for merge().

    With a pool, the writing runs in a thread of its own (psycopg2 lets go of the GIL while
    PostgreSQL works), so reading the file never waits on the database; batches that queue up
    meanwhile are written together (fewer, bigger statements)."""

    def __init__(self, cur, import_id, org_id, mapping, defaults, on_progress=None, pool=None):
        self.cur = cur
        self.import_id, self.org_id = str(import_id), str(org_id)
        self.mapping, self.defaults = mapping, defaults
        self.on_progress = on_progress
        self.pool = pool
        self.first_by_email = {}
        self.first_by_phone = {}
        self.records = 0
        self.merged = 0
        self.existing = 0  # first records whose person the database already held
        self.batches = 0
        self.held_contacts = True  # whether the organization had contacts before this import
        self.stamp = id_stamp()
        # The contacts written so far and how many lack an e-mail, a phone, a time zone.
        self.written = [0, 0, 0, 0]

    def feed(self, table):
        # One import of an organization at a time: a second one waits for the first to commit,
        # then finds its contacts (two at once would both create the same people; the second
        # would fail on the unique e-mail).
        self.cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 11))", (self.org_id,))
        self.cur.execute(STAGE_SQL)
        self.cur.execute("SELECT EXISTS (SELECT 1 FROM contacts WHERE org_id = %s)", (self.org_id,))
        row = self.cur.fetchone()
        self.held_contacts = bool(row["exists"] if isinstance(row, dict) else row[0])
        if self.pool is None:
            for normalised in self._normalised(table):
                self._write([self._dedupe(normalised)])
        else:
            self._feed_in_thread(table)
        return self.records

    def _feed_in_thread(self, table):
        pending = queue.Queue(maxsize=WRITE_AHEAD)
        failed, aborted = [], threading.Event()

        def write():
            ended = False  # the end marker (None) was taken
            try:
                while not ended:
                    items = [pending.get()]
                    while items[-1] is not None and len(items) < WRITE_TOGETHER:
                        try:
                            items.append(pending.get_nowait())
                        except queue.Empty:
                            break
                    ended = items[-1] is None
                    items = [i for i in items if i is not None]
                    if items and not aborted.is_set():
                        self._write(items)
            except BaseException as err:  # handed to the reading thread, which raises it
                failed.append(err)
                while not ended:  # keep taking, so the reading thread never blocks on a full queue
                    ended = pending.get() is None

        writer = threading.Thread(target=write, name="import-writer", daemon=True)
        writer.start()
        try:
            for normalised in self._normalised(table):
                if failed:
                    break
                pending.put(self._dedupe(normalised))
        except BaseException:
            aborted.set()
            raise
        finally:
            pending.put(None)
            writer.join()
        if failed:
            raise failed[0]

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
            plan = importer.Plan(self.mapping, self.defaults, columns)
            for batch in self._batches(table):
                yield normalise(batch, plan, self.stamp)
            return
        in_flight = collections.deque()
        for batch in self._batches(table):
            in_flight.append(self.pool.apply_async(
                _normalise_task, ((batch, columns, self.mapping, self.defaults, self.stamp),)))
            if len(in_flight) >= IN_FLIGHT:
                yield in_flight.popleft().get(NORMALISE_TIMEOUT)
        while in_flight:
            yield in_flight.popleft().get(NORMALISE_TIMEOUT)

    def _dedupe(self, normalised):
        """A normalised batch with its repeats found: (text, repeats, rejected, tags, unsub,
        records)."""
        text, keys, rejected, tags, unsub = normalised
        by_email, by_phone = self.first_by_email, self.first_by_phone
        repeats = []
        for number, email, phone in keys:
            # Same person as an earlier record: by e-mail, else (no e-mail) by phone.
            if email:
                first = by_email.setdefault(email, number)
                if phone:
                    # The person's first record (a repeat's phone leads to its group, not to it).
                    by_phone.setdefault(phone, first)
            else:
                first = by_phone.setdefault(phone, number)
            if first != number:
                repeats.append((number, first))
        self.merged += len(repeats)
        return text, repeats, rejected, tags, unsub, len(keys) + len(rejected)

    def _write(self, items):
        """Deduplicated batches (in file order) into the database, as one."""
        rejected = [r for item in items for r in item[2]]
        if rejected:
            rejects = io.StringIO()
            import_id = self.import_id
            csv.writer(rejects).writerows((import_id, number, "rejected", reason, warnings)
                                          for number, reason, warnings in rejected)
            rejects.seek(0)
            self.cur.copy_expert(REJECT_COPY, rejects, COPY_READ)
        text = "".join(item[0] for item in items)
        if text:
            self.write_batch(text, [r for item in items for r in item[1]],
                             any(item[3] for item in items), any(item[4] for item in items))
        done = sum(item[5] for item in items)
        self.records += done
        if self.on_progress and done:
            self.on_progress(self.records)

    def _count_written(self, row, sign=1):
        values = list(row.values()) if isinstance(row, dict) else list(row)
        self.written = [w + sign * int(v or 0) for w, v in zip(self.written, values)]

    def write_batch(self, text, repeats, tags, unsub):
        """One batch into the database: its people new to the organization become contacts with
        their tags, unsubscribes and outcome (`created`); the rest is kept for merge()."""
        cur = self.cur
        params = {"org": self.org_id, "import_id": self.import_id}
        if self.batches:
            cur.execute("TRUNCATE import_batch, import_matches")
        self.batches += 1
        cur.copy_expert(STAGE_COPY, io.StringIO(text), COPY_READ)
        if repeats:
            cur.execute("TRUNCATE import_repeats")
            buf = io.StringIO()
            csv.writer(buf).writerows(repeats)
            buf.seek(0)
            cur.copy_expert(REPEATS_COPY, buf, COPY_READ)
            cur.execute("UPDATE import_batch b SET grp = r.grp FROM import_repeats r"
                        " WHERE b.record = r.record")
        matched = 0
        if self.held_contacts:  # else no record can match a contact that existed before
            cur.execute(MATCH_SQL, params)
            matched = cur.rowcount
        cur.execute(CREATE_SQL, params)
        self._count_written(cur.fetchone())
        if tags:
            cur.execute(TAGS_SQL, params)
            cur.execute(LINK_CREATED_SQL, params)
        if unsub:
            cur.execute(UNSUB_SQL.format(pairs=CREATED_PAIRS), params)
        for sql in CREATED_ROWS_SQL:
            cur.execute(sql, params)
        if matched or repeats or unsub:
            # Kept for merge(): repeats, people the database held, and new contacts with an
            # unsubscribe for an address they lack (a later repeat may bring the phone an SMS
            # opt-out is for).
            cur.execute("INSERT INTO import_stage SELECT * FROM import_batch b WHERE b.grp IS NOT"
                        " NULL OR b.record IN (SELECT grp FROM import_matches) OR (b.unsub IS NOT"
                        " NULL AND ((b.email IS NULL AND 'email' = ANY(b.unsub)) OR (b.phone IS"
                        " NULL AND b.unsub && ARRAY['sms', 'phone'])))")
        if matched:
            cur.execute("INSERT INTO import_existing SELECT * FROM import_matches")
            self.existing += matched


# This batch's first records against what the database holds: by e-mail, else (no e-mail) by
# phone: a contact without e-mail first (a phone is how those are known), else the oldest. Contacts earlier batches created never match: a record with the same
# e-mail or phone as an earlier record of the file is a repeat, not a first record.
MATCH_SQL = """
INSERT INTO import_matches
SELECT b.record, c.id, c.name, c.first_name, c.last_name, c.email, c.phone, c.phone_extension,
       c.timezone, c.custom
FROM import_batch b JOIN contacts c ON c.org_id = %(org)s AND c.email = b.email
WHERE b.grp IS NULL AND b.email IS NOT NULL
UNION ALL
SELECT b.record, m.id, m.name, m.first_name, m.last_name, m.email, m.phone, m.phone_extension,
       m.timezone, m.custom
FROM import_batch b CROSS JOIN LATERAL (
  SELECT c.* FROM contacts c WHERE c.org_id = %(org)s AND c.phone = b.phone
  ORDER BY c.email IS NOT NULL, c.created_at, c.id LIMIT 1) m
WHERE b.grp IS NULL AND b.email IS NULL AND b.phone IS NOT NULL
"""
# A first record of someone new to the organization. (NOT IN, which PostgreSQL answers from a
# hash of import_matches whatever it guesses: temporary tables have no statistics, and the
# nested-loop anti-join it chose for NOT EXISTS took a minute for a batch of 5,000.)
NEW = "b.grp IS NULL AND b.record NOT IN (SELECT grp FROM import_matches)"
# -> how many contacts it created and how many of them lack an e-mail, a phone, a time zone.
CREATE_SQL = f"""
WITH created AS (
  INSERT INTO contacts (id, org_id, {", ".join(SCALARS)}, custom)
  SELECT b.new_id, %(org)s, {", ".join("b." + f for f in SCALARS)}, COALESCE(b.custom, '{{}}')
  FROM import_batch b WHERE {NEW} ORDER BY b.new_id
  RETURNING email IS NULL AS e, phone IS NULL AS p, timezone IS NULL AS t)
SELECT count(*) AS n, count(*) FILTER (WHERE e) AS e, count(*) FILTER (WHERE p) AS p,
       count(*) FILTER (WHERE t) AS t
FROM created
"""
# Tags named anywhere in the batch, missing ones created (the first spelling in the file wins:
# batches come in file order); those of its new contacts linked when active.
TAGS_SQL = """
INSERT INTO tags (id, org_id, kind, title)
SELECT gen_random_uuid(), %(org)s, 'contact', title FROM (
  SELECT DISTINCT ON (lower(u.t)) u.t AS title FROM import_batch b,
         unnest(b.tags) WITH ORDINALITY u(t, o)
  WHERE b.tags IS NOT NULL ORDER BY lower(u.t), b.record, u.o) x
ON CONFLICT DO NOTHING
"""
# Each title looked up by the tags index, one lookup per title (a join, even a plain lateral
# one, which the planner flattens into a join, let it loop over every tag of the organization
# and rescan the batch for each: minutes for a batch naming thousands of tags; LIMIT 1 (a
# title is one tag) keeps the lookup per title).
LINK_SQL = """
INSERT INTO contact_tags (tag_id, contact_id, org_id)
SELECT DISTINCT t.id, x.contact_id, %(org)s::uuid FROM ({items}) x
CROSS JOIN LATERAL (SELECT t.id FROM tags t WHERE t.org_id = %(org)s AND t.kind = 'contact'
                    AND lower(t.title) = lower(x.title) AND t.active LIMIT 1) t
ON CONFLICT DO NOTHING
"""
LINK_CREATED_SQL = LINK_SQL.format(items=f"""
  SELECT b.new_id AS contact_id, u.t AS title FROM import_batch b, unnest(b.tags) u(t)
  WHERE b.tags IS NOT NULL AND {NEW}""")
# Unsubscribes (channel, identifier) for `pairs`, with history for each change.
UNSUB_SQL = """
WITH pairs AS ({pairs}),
changed AS (
  INSERT INTO unsubscribes (org_id, channel, identifier, group_id, unsubscribed, source)
  SELECT %(org)s, channel, identifier, NULL, true, 'import' FROM pairs
  WHERE identifier IS NOT NULL ORDER BY channel, identifier
  ON CONFLICT (org_id, channel, group_id, identifier) DO UPDATE
  SET unsubscribed = EXCLUDED.unsubscribed, source = EXCLUDED.source, updated_at = now()
  WHERE unsubscribes.unsubscribed IS DISTINCT FROM EXCLUDED.unsubscribed
  RETURNING channel, identifier)
INSERT INTO unsubscribe_history (org_id, channel, identifier, group_id, unsubscribed, source,
                                 detail)
SELECT %(org)s, channel, identifier, NULL, true, 'import', NULL FROM changed
"""
CREATED_PAIRS = f"""
  SELECT DISTINCT ch AS channel, CASE ch WHEN 'email' THEN b.email ELSE b.phone END AS identifier
  FROM import_batch b, unnest(b.unsub) ch WHERE b.unsub IS NOT NULL AND {NEW}"""
# Outcomes of the new contacts: one import_created row for the batch, import_rows lines for
# those with warnings.
CREATED_ROWS_SQL = [f"""
INSERT INTO import_created (import_id, first_record, records, contact_ids)
SELECT %(import_id)s, min(b.record), array_agg(b.record ORDER BY b.record),
       array_agg(b.new_id ORDER BY b.record)
FROM import_batch b WHERE {NEW} AND b.warnings IS NULL HAVING count(*) > 0
""", f"""
INSERT INTO import_rows (import_id, record, outcome, contact_id, warnings)
SELECT %(import_id)s, b.record, 'created', b.new_id, b.warnings FROM import_batch b
WHERE {NEW} AND b.warnings IS NOT NULL
"""]


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


# Groups with repeats: the first non-empty value of each field by record order, custom keys
# likewise, tags and unsubscribes added up, over the group's staged records (with its first
# record for a person the database held; without it, the repeats alone, for a new contact).
# Each part is one grouped pass over those groups' records (never a scan per group).
FILL_SQL = [
    """CREATE TEMP TABLE import_fill_rows ON COMMIT DROP AS
       SELECT s.* FROM import_stage s
       WHERE s.grp IN (SELECT grp FROM import_stage WHERE record <> grp)""",
    f"""CREATE TEMP TABLE import_fill ON COMMIT DROP AS
       SELECT s.grp, {", ".join(_first(f) for f in SCALARS)},
              COALESCE(c.custom, '{{}}'::jsonb) AS custom, t.tags, u.unsub
       FROM import_fill_rows s
       LEFT JOIN (SELECT grp, jsonb_object_agg(k, v) AS custom FROM (
                    SELECT DISTINCT ON (s2.grp, e.key) s2.grp, e.key AS k, e.value AS v
                    FROM import_fill_rows s2, jsonb_each(s2.custom) e
                    ORDER BY s2.grp, e.key, s2.record) x GROUP BY grp) c ON c.grp = s.grp
       LEFT JOIN (SELECT grp, array_agg(t ORDER BY r, o) AS tags FROM (
                    SELECT DISTINCT ON (s2.grp, u.t) s2.grp, u.t, s2.record AS r, u.o
                    FROM import_fill_rows s2, unnest(s2.tags) WITH ORDINALITY u(t, o)
                    ORDER BY s2.grp, u.t, s2.record, u.o) x GROUP BY grp) t ON t.grp = s.grp
       LEFT JOIN (SELECT s2.grp, array_agg(DISTINCT ch ORDER BY ch) AS unsub
                  FROM import_fill_rows s2, unnest(s2.unsub) ch GROUP BY s2.grp) u
              ON u.grp = s.grp
       GROUP BY s.grp, c.custom, t.tags, u.unsub""",
]

# People the database held, no record repeated: each staged record is its own group.
GROUPS_SQL = """
CREATE TEMP TABLE import_groups ON COMMIT DROP AS
SELECT record AS grp, email, phone, phone_extension, name, first_name, last_name, timezone,
       COALESCE(custom, '{}'::jsonb) AS custom, tags, unsub
FROM import_stage
"""
# People the database held, with their repeats filled in.
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

def _link_tags(groups):
    """SQL: link the tags of each group of the table `groups` (contact_id, tags) to its contact."""
    return LINK_SQL.format(items=f"""
       SELECT g.contact_id, u.t AS title FROM {groups} g, unnest(g.tags) u(t)
       WHERE g.tags IS NOT NULL""")


def _unsubscribe(groups):
    """SQL: the unsubscribes of each group of `groups` (contact_id, unsub), for its contact's
    address as the import left it."""
    return UNSUB_SQL.format(pairs=f"""
       SELECT DISTINCT ch AS channel,
              CASE ch WHEN 'email' THEN c.email ELSE c.phone END AS identifier
       FROM {groups} g JOIN contacts c ON c.id = g.contact_id, unnest(g.unsub) ch
       WHERE g.unsub IS NOT NULL""")


# The people the database held (import_existing: matched batch by batch, before any write).
EXISTING_SQL = [
    # Each one's outcome: updated when a value, a tag or an unsubscribe is new to the contact.
    # (An unsubscribe this import wrote itself, for a new contact sharing a phone, was not
    # there before: xmin tells.)
    f"""CREATE TEMP TABLE import_result ON COMMIT DROP AS
       SELECT g.*, c.id AS contact_id, {_changed("g", "c")} AS changed,
              CASE WHEN {_changed("g", "c")}
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
                               AND u.channel = ch AND u.identifier = {_ident("g", "c", "ch")}
                               AND u.xmin <> pg_current_xact_id()::xid)))
                   THEN 'updated' ELSE 'unchanged' END AS outcome
       FROM import_groups g JOIN import_existing c ON c.grp = g.grp""",
    # The file's non-empty values overwrite (an e-mail is never replaced); custom keys merge.
    f"""UPDATE contacts c SET
         {", ".join(f"{f} = COALESCE(g.{f}, c.{f})" for f in SCALARS if f != "email")},
         email = COALESCE(c.email, g.email), custom = c.custom || g.custom, updated_at = now()
       FROM (SELECT DISTINCT ON (contact_id) * FROM import_result
             WHERE changed ORDER BY contact_id, grp) g
       WHERE c.id = g.contact_id AND c.org_id = %(org)s""",
    _link_tags("import_result"),
    _unsubscribe("import_result"),
    """INSERT INTO import_rows (import_id, record, outcome, contact_id, merged_into, warnings)
       SELECT %(import_id)s, s.record,
              CASE WHEN s.grp IS NULL OR s.record = s.grp THEN g.outcome ELSE 'merged' END,
              g.contact_id, NULLIF(s.grp, s.record), s.warnings
       FROM import_stage s JOIN import_result g ON g.grp = COALESCE(s.grp, s.record)""",
]

# New contacts (created batch by batch from their first record) whose later records repeat
# them: those fill the contact's gaps (its first record's values stay), add custom keys, tags and
# unsubscribes; they are `merged` into it.
REPEATED_SQL = [
    """CREATE TEMP TABLE import_filled ON COMMIT DROP AS
       SELECT f.*, r.contact_id, c.email IS NULL AS e0, c.phone IS NULL AS p0,
              c.timezone IS NULL AS t0
       FROM import_fill f
       JOIN import_outcomes r ON r.import_id = %(import_id)s AND r.record = f.grp
                             AND r.outcome = 'created'
       JOIN contacts c ON c.id = r.contact_id""",
    # -> the gaps (e-mail, phone, time zone) the repeats filled, off the written counts.
    f"""WITH filled AS (
         UPDATE contacts c SET
           {", ".join(f"{f} = COALESCE(c.{f}, g.{f})" for f in SCALARS)},
           custom = g.custom || c.custom
         FROM import_filled g WHERE c.id = g.contact_id AND c.org_id = %(org)s
         RETURNING g.e0 AND c.email IS NOT NULL AS e, g.p0 AND c.phone IS NOT NULL AS p,
                   g.t0 AND c.timezone IS NOT NULL AS t)
       SELECT 0 AS n, count(*) FILTER (WHERE e) AS e, count(*) FILTER (WHERE p) AS p,
              count(*) FILTER (WHERE t) AS t
       FROM filled""",
    _link_tags("import_filled"),
    _unsubscribe("import_filled"),
    """INSERT INTO import_rows (import_id, record, outcome, contact_id, merged_into, warnings)
       SELECT %(import_id)s, s.record, 'merged', g.contact_id, s.grp, s.warnings
       FROM import_stage s JOIN import_filled g ON g.grp = s.grp WHERE s.record <> s.grp""",
]


FILLED_GAPS = 1  # the REPEATED_SQL statement that answers the gaps it filled

# The people the database held, as this import left them: how many, and lacking what.
EXISTING_WRITTEN_SQL = """
SELECT count(*) AS n, count(*) FILTER (WHERE c.email IS NULL) AS e,
       count(*) FILTER (WHERE c.phone IS NULL) AS p, count(*) FILTER (WHERE c.timezone IS NULL) AS t
FROM contacts c WHERE c.org_id = %(org)s AND c.id IN (SELECT contact_id FROM import_result)
"""


def merge(cur, stager):
    """What needs the whole file, after every batch is written: people the database held
    (stager.existing first records matched them) and records repeating earlier ones
    (stager.merged). -> counts, from the outcomes, with `written`: the contacts the import wrote
    and how many lack an e-mail, a phone, a time zone (the result's summary)."""
    params = {"org": stager.org_id, "import_id": stager.import_id}
    if stager.merged:
        cur.execute("UPDATE import_stage SET grp = record WHERE grp IS NULL")
        for sql in FILL_SQL:
            cur.execute(sql)
    if stager.existing:
        cur.execute(GROUPS_FILLED_SQL if stager.merged else GROUPS_SQL)
        for sql in EXISTING_SQL:
            cur.execute(sql, params)
        cur.execute(EXISTING_WRITTEN_SQL, params)
        stager._count_written(cur.fetchone())
    if stager.merged:
        for i, sql in enumerate(REPEATED_SQL):
            cur.execute(sql, params)
            if i == FILLED_GAPS:
                stager._count_written(cur.fetchone(), -1)
    cur.execute("SELECT outcome, count(*) AS n, COALESCE(sum(jsonb_array_length(warnings)), 0) AS w"
                " FROM import_outcomes WHERE import_id = %s GROUP BY outcome", (stager.import_id,))
    counts = {"records": 0, "created": 0, "updated": 0, "unchanged": 0, "merged": 0,
              "rejected": 0, "warnings": 0}
    for row in cur.fetchall():
        outcome, n, w = (row["outcome"], row["n"], row["w"]) if isinstance(row, dict) else row
        counts[outcome] += n
        counts["records"] += n
        counts["warnings"] += int(w)
    n, email, phone, zone = stager.written
    counts["written"] = {"contacts": n, "without": {"email": email, "phone": phone,
                                                    "timezone": zone}}
    return counts


def run(tx, imp, defaults, chunks, on_progress=None, pool=None):
    """Imports `imp` (an imports row) from its upload's chunks inside `tx`; -> counts. With a
    pool, `chunks` must come through another connection than tx's: a thread writes on tx's while
    the file is read."""
    cur = tx.cursor()
    stager = Stager(cur, imp["id"], imp["org_id"], imp["mapping"], defaults, on_progress, pool)
    stager.feed(reader.open_table(chunks))
    return merge(cur, stager)
