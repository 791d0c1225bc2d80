"""The set-based import (services/contacts/bulk.py) straight against the stack's PostgreSQL: what
the import worker runs. Dedupe inside the file and against existing contacts, re-imports, and the
same outcomes whichever way the records are batched or normalised (in this process or a pool)."""
import multiprocessing
import time
import uuid

import pytest
from psycopg2.extras import Json, RealDictCursor

from services.common.db import Tx
from services.contacts import bulk, imports

CSV = (b"email,name,phone,sms stop,plan\n"
       b"ana@example.com,Ana,(202) 555-0143,,gold\n"
       b"ANA@example.com ,,,yes,\n"
       b",Laura,+1 202 555 0106,,\n"
       b",Nobody,555-0144,,\n"
       b",Laura again,(202) 555-0106,,silver\n")
MAP = {"email": "email", "name": "name", "phone": "phone", "unsubscribe": {"sms": "sms stop"},
       "custom": "rest"}


@pytest.fixture
def db(stack):
    conn = stack.db("contacts")
    yield conn
    conn.close()


def run(conn, org, data, mapping, pool=None, reading=None):
    """Stores `data` as an upload and imports it with bulk.run (with a pool, reading the file on
    the connection `reading`, as the import worker does); -> (counts, import id)."""
    tx = Tx(conn)
    upload_id, import_id = uuid.uuid4(), uuid.uuid4()
    tx.execute("INSERT INTO uploads (id, org_id, filename, kind, size, chunks) VALUES (%s, %s, 'f.csv', 'csv', %s, 1)",
               (upload_id, org, len(data)))
    tx.execute("INSERT INTO upload_chunks VALUES (%s, 0, %s)", (upload_id, data))
    tx.execute("INSERT INTO imports (id, org_id, upload_id, mapping) VALUES (%s, %s, %s, %s)",
               (import_id, org, upload_id, Json(mapping)))
    imp = tx.one("SELECT * FROM imports WHERE id = %s", (import_id,))
    if pool is not None:
        conn.commit()  # the upload, for the reading connection to see
    chunks = imports.chunks(Tx(reading) if pool is not None else tx, upload_id)
    counts = bulk.run(tx, imp, {"default_country": "US"}, chunks, pool=pool)
    imports.finish(tx, imp, counts)
    conn.commit()
    return counts, import_id


def contacts(conn, org):
    with conn.cursor(cursor_factory=RealDictCursor) as cur:
        cur.execute("SELECT * FROM contacts WHERE org_id = %s ORDER BY created_at, id", (org,))
        return cur.fetchall()


def outcomes(conn, import_id):
    with conn.cursor() as cur:
        cur.execute("SELECT record, outcome, merged_into, reason FROM import_outcomes WHERE import_id = %s"
                    " ORDER BY record", (import_id,))
        return cur.fetchall()


def test_records_of_one_person_merge_fill_only_and_unusable_ones_are_rejected(db):
    org = uuid.uuid4()
    counts, import_id = run(db, org, CSV, MAP)
    assert (counts["created"], counts["merged"], counts["rejected"], counts["records"]) == (2, 2, 1, 5)
    ana = next(c for c in contacts(db, org) if c["email"] == "ana@example.com")
    assert (ana["name"], ana["phone"], ana["custom"]) == ("Ana", "+12025550143", {"plan": "gold"})
    laura = next(c for c in contacts(db, org) if c["phone"] == "+12025550106")
    assert laura["name"] == "Laura" and laura["custom"] == {"plan": "silver"}
    assert outcomes(db, import_id) == [
        (1, "created", None, None), (2, "merged", 1, None), (3, "created", None, None),
        (4, "rejected", None, "no e-mail and invalid phone '555-0144' for region US: dropped"),
        (5, "merged", 3, None)]
    with db.cursor() as cur:
        cur.execute("SELECT channel, identifier, source FROM unsubscribes WHERE org_id = %s", (org,))
        assert cur.fetchall() == [("sms", "+12025550143", "import")]
        cur.execute("SELECT count(*) FROM unsubscribe_history WHERE org_id = %s", (org,))
        assert cur.fetchone()[0] == 1


def test_reimport_updates_nothing_and_a_changed_value_updates(db):
    org = uuid.uuid4()
    run(db, org, CSV, MAP)
    counts, _ = run(db, org, CSV, MAP)
    assert (counts["created"], counts["updated"], counts["unchanged"], counts["merged"]) == (0, 0, 2, 2)
    counts, import_id = run(db, org, b"email,name,vip\nana@example.com,Ana Souza,\n",
                            {"email": "email", "name": "name", "custom": "rest"})
    assert (counts["updated"], counts["unchanged"]) == (1, 0)
    ana = next(c for c in contacts(db, org) if c["email"] == "ana@example.com")
    # the new value overwrote; the empty cell cleared nothing; custom data kept
    assert (ana["name"], ana["phone"], ana["custom"]) == ("Ana Souza", "+12025550143", {"plan": "gold"})
    counts, _ = run(db, org, b"email,tags\nana@example.com,Donor\n", {"email": "email", "tags": "tags"})
    assert counts["updated"] == 1
    counts, _ = run(db, org, b"email,tags\nana@example.com,donor\n", {"email": "email", "tags": "tags"})
    assert counts["unchanged"] == 1  # the same tag, whatever its case, is nothing new


def test_outcomes_do_not_depend_on_batching_or_on_normalising_in_a_pool(db, stack, monkeypatch):
    lines = [b"email,name,phone,plan"]
    for i in range(1200):
        # every 7th record repeats an earlier person (by e-mail, or phone-only by phone)
        if i % 7 == 6:
            lines.append(b"p%d@example.com,,,late-%d" % (i - 3, i))
        elif i % 11 == 10:
            lines.append(b",Phone Only %d,+1 202 555 %04d," % (i, i % 50))
        else:
            lines.append(b"p%d@example.com,P %d,+1 202 555 %04d,gold" % (i, i, 1000 + i))
    data = b"\n".join(lines) + b"\n"
    mapping = {"email": "email", "name": "name", "phone": "phone", "custom": "rest"}
    org_a, org_b = uuid.uuid4(), uuid.uuid4()
    counts_a, import_a = run(db, org_a, data, mapping)
    monkeypatch.setattr(bulk, "STAGE_BATCH", 50)
    pool = multiprocessing.get_context("fork").Pool(2)
    reading = stack.db("contacts")
    reading.autocommit = True
    try:
        counts_b, import_b = run(db, org_b, data, mapping, pool=pool, reading=reading)
    finally:
        reading.close()
        pool.close()
        pool.join()
    assert counts_a == counts_b
    assert counts_a["merged"] > 100 and counts_a["records"] == 1200
    assert outcomes(db, import_a) == outcomes(db, import_b)

    def shape(org):
        return sorted(repr((c["email"], c["phone"], c["name"], c["custom"])) for c in contacts(db, org))
    assert shape(org_a) == shape(org_b)
    p3 = next(c for c in contacts(db, org_a) if c["email"] == "p3@example.com")
    assert p3["custom"] == {"plan": "gold"}  # the first record wins; a later one only fills gaps


def _rich_file(seed, n):
    """Records that exercise every rule at once: e-mails in two spellings, phones shared by
    e-mail and phone-only records, invalid cells, tags in two cases (and an inactive one),
    unsubscribes on two channels, custom data."""
    import csv
    import io
    import random
    rnd = random.Random(seed)
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["email", "phone", "name", "tags", "unsub", "sms", "plan", "tz"])
    for i in range(n):
        k = rnd.randrange(40)
        w.writerow([rnd.choice(["", f"p{k}@example.com", f"P{k}@Example.com", "bad@@x"]),
                    rnd.choice(["", f"+1 202 555 {k:04d}", "555-01", f"(202) 555-{k:04d}"]),
                    rnd.choice(["", f"N{i}"]), rnd.choice(["", "vip", "VIP,donor", "donor; Q1", "x"]),
                    rnd.choice(["", "", "", "yes"]), rnd.choice(["", "", "yes"]),
                    rnd.choice(["", "gold", f"v{i}"]),
                    rnd.choice(["", "europe_slash_london", "UTC+1", "Asia/Tokyo"])])
    return out.getvalue().encode()


RICH_MAP = {"email": "email", "phone": "phone", "name": "name", "tags": "tags", "timezone": "tz",
            "unsubscribe": {"email": "unsub", "sms": "sms"}, "custom": "rest"}


def _state(conn, org, import_ids):
    """Everything an import decides, with contacts named by their e-mail and phone."""
    with conn.cursor() as cur:
        rows = []
        for import_id in import_ids:
            cur.execute("SELECT r.record, r.outcome, r.merged_into, r.reason, r.warnings::text,"
                        " c.email, c.phone FROM import_outcomes r LEFT JOIN contacts c ON c.id = r.contact_id"
                        " WHERE r.import_id = %s ORDER BY r.record", (import_id,))
            rows.append(cur.fetchall())
        cur.execute("SELECT email, phone, name, timezone, custom::text FROM contacts WHERE org_id = %s",
                    (org,))
        people = sorted(map(repr, cur.fetchall()))
        cur.execute("SELECT c.email, c.phone, t.title FROM contact_tags ct JOIN contacts c"
                    " ON c.id = ct.contact_id JOIN tags t ON t.id = ct.tag_id WHERE c.org_id = %s", (org,))
        tagged = sorted(map(repr, cur.fetchall()))
        cur.execute("SELECT channel, identifier, unsubscribed, source FROM unsubscribes WHERE org_id = %s",
                    (org,))
        unsubs = sorted(map(repr, cur.fetchall()))
        cur.execute("SELECT channel, identifier FROM unsubscribe_history WHERE org_id = %s", (org,))
        history = sorted(map(repr, cur.fetchall()))
    return rows, people, tagged, unsubs, history


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_three_imports_into_one_organization_decide_the_same_in_one_batch_or_many(db, stack, monkeypatch,
                                                                                 seed):
    """Records are written batch by batch as they come (by a writing thread when a pool
    normalises); what the end decides (people the database held, repeats filling a new
    contact's gaps, unsubscribes a later record's phone makes possible) must not depend on where
    the batches split."""
    files = [_rich_file(seed * 10 + i, n) for i, n in enumerate((60, 200, 200))]
    states, summaries = [], []
    pool = multiprocessing.get_context("fork").Pool(2)
    reading = stack.db("contacts")
    reading.autocommit = True
    for batch, in_pool in ((5000, False), (7, False), (9, True)):
        monkeypatch.setattr(bulk, "STAGE_BATCH", batch)
        org = uuid.uuid4()
        with db.cursor() as cur:
            cur.execute("INSERT INTO tags (id, org_id, kind, title, active) VALUES (%s, %s, 'contact', 'x', false)",
                        (uuid.uuid4(), org))
        db.commit()
        ids = []
        for data in files:
            counts, import_id = run(db, org, data, RICH_MAP, pool if in_pool else None, reading)
            ids.append(import_id)
            summaries.append(counts["written"])
        states.append(_state(db, org, ids))
    reading.close()
    pool.close()
    pool.join()
    assert states[0] == states[1] == states[2]
    assert summaries[:3] == summaries[3:6] == summaries[6:]
    rows = states[0][0]
    outcomes_seen = {r[1] for imp in rows for r in imp}
    assert outcomes_seen == {"created", "updated", "unchanged", "merged", "rejected"}
    assert not any("'x'" in t for t in states[0][2])  # the inactive tag is never applied


def test_the_written_summary_matches_a_recount_of_the_contacts_the_import_wrote(db):
    """imports.written is counted while writing (new contacts as created, gaps repeats filled,
    people the database held as left); it must say what counting the outcomes' contacts says."""
    org = uuid.uuid4()
    for i, n in enumerate((80, 300)):
        counts, import_id = run(db, org, _rich_file(100 + i, n), RICH_MAP)
        with db.cursor() as cur:
            cur.execute("SELECT count(*), count(*) FILTER (WHERE email IS NULL),"
                        " count(*) FILTER (WHERE phone IS NULL), count(*) FILTER (WHERE timezone IS NULL)"
                        " FROM contacts WHERE id IN (SELECT contact_id FROM import_outcomes WHERE import_id = %s)",
                        (import_id,))
            n_all, email, phone, zone = cur.fetchone()
            cur.execute("SELECT written FROM imports WHERE id = %s", (import_id,))
            stored = cur.fetchone()[0]
        expected = {"contacts": n_all, "without": {"email": email, "phone": phone, "timezone": zone}}
        assert counts["written"] == expected == stored
        assert n_all > 0 and 0 < phone < n_all and email > 0


def test_a_phone_only_record_joins_the_contact_of_the_earliest_record_with_that_phone(db):
    """Two contacts of one import share a phone; a later phone-only record (next import)
    matches the oldest, which among contacts made together is the earlier record's."""
    org = uuid.uuid4()
    run(db, org, b"email,phone\n,+1 202 555 0100\nb@example.com,+1 202 555 0100\n",
        {"email": "email", "phone": "phone"})
    counts, import_id = run(db, org, b"phone,plan\n(202) 555-0100,gold\n",
                            {"phone": "phone", "custom": "rest"})
    assert counts["updated"] == 1
    phone_only = [c for c in contacts(db, org) if c["email"] is None]
    assert len(phone_only) == 1 and phone_only[0]["custom"] == {"plan": "gold"}


def test_a_record_repeating_a_repeat_by_phone_joins_the_first_record(db):
    """Record 2 repeats record 1 by e-mail and brings a phone; record 3 (phone only) repeats
    record 2 by that phone, so it belongs to record 1's person too: never lost."""
    org = uuid.uuid4()
    counts, import_id = run(db, org, b"email,phone,tags,sms\na@example.org,,,\n"
                                     b"a@example.org,+1 202 555 0101,,\n,(202) 555-0101,vip,yes\n",
                            {"email": "email", "phone": "phone", "tags": "tags",
                             "unsubscribe": {"sms": "sms"}})
    assert (counts["records"], counts["created"], counts["merged"]) == (3, 1, 2)
    assert outcomes(db, import_id) == [(1, "created", None, None), (2, "merged", 1, None),
                                       (3, "merged", 1, None)]
    [a] = contacts(db, org)
    assert a["phone"] == "+12025550101"
    with db.cursor() as cur:
        cur.execute("SELECT t.title FROM contact_tags ct JOIN tags t ON t.id = ct.tag_id"
                    " WHERE ct.contact_id = %s", (a["id"],))
        assert cur.fetchall() == [("vip",)]
        cur.execute("SELECT channel, identifier FROM unsubscribes WHERE org_id = %s", (org,))
        assert cur.fetchall() == [("sms", "+12025550101")]


def test_new_contacts_sort_in_record_order_across_batches_and_processes(db, stack, monkeypatch):
    monkeypatch.setattr(bulk, "STAGE_BATCH", 3)
    data = b"email\n" + b"".join(b"o%d@example.org\n" % i for i in range(40))
    pool = multiprocessing.get_context("fork").Pool(2)
    reading = stack.db("contacts")
    reading.autocommit = True
    try:
        org = uuid.uuid4()
        run(db, org, data, {"email": "email"}, pool, reading)
    finally:
        reading.close()
        pool.close()
        pool.join()
    by_id = [c["email"] for c in sorted(contacts(db, org), key=lambda c: c["id"])]
    assert by_id == [f"o{i}@example.org" for i in range(40)]


def test_a_write_failing_at_the_last_batch_fails_the_import_and_never_hangs(db, stack, monkeypatch):
    """The writing thread may take the end of the file together with the last batches; a write
    failing then must reach the caller (it once left both threads waiting on each other)."""
    import threading

    monkeypatch.setattr(bulk, "STAGE_BATCH", 3)
    # The whole file queues while the first batch is written; the next write takes the rest
    # together with the end marker, and fails.
    monkeypatch.setattr(bulk, "WRITE_AHEAD", 100)
    monkeypatch.setattr(bulk, "WRITE_TOGETHER", 100)
    real = bulk.Stager.write_batch

    def failing(self, text, *args):
        if "last@example.org" in text:
            raise RuntimeError("the database went away")
        time.sleep(0.05)  # a slow database: batches queue up, the end marker with the last ones
        return real(self, text, *args)

    monkeypatch.setattr(bulk.Stager, "write_batch", failing)
    data = b"email\n" + b"".join(b"w%d@example.org\n" % i for i in range(40)) + b"last@example.org\n"
    pool = multiprocessing.get_context("fork").Pool(2)
    reading = stack.db("contacts")
    reading.autocommit = True
    raised = []

    def attempt():
        try:
            run(db, uuid.uuid4(), data, {"email": "email"}, pool, reading)
        except RuntimeError as err:
            raised.append(err)

    try:
        worker = threading.Thread(target=attempt, daemon=True)
        worker.start()
        worker.join(60)
        assert not worker.is_alive(), "the import hung"
        assert [str(e) for e in raised] == ["the database went away"]
    finally:
        db.rollback()
        reading.close()
        pool.terminate()


def test_the_created_list_runs_in_record_order_across_batches_and_warned_records(db, monkeypatch):
    """Created records are kept a row per batch (import_created), those with warnings a row
    each (import_rows); the result's `created` list merges both, first records first, and reads
    only as many batches as it needs."""
    monkeypatch.setattr(bulk, "STAGE_BATCH", 4)
    lines = [b"email,tz"] + [b"c%d@example.org,%s" % (i, b"UTC+1" if i % 4 == 1 else b"")
                             for i in range(30)]
    org = uuid.uuid4()
    counts, import_id = run(db, org, b"\n".join(lines) + b"\n", {"email": "email", "timezone": "tz"})
    assert (counts["created"], counts["warnings"]) == (30, 8)
    ctx = {"org_id": str(org)}
    monkeypatch.setattr(imports, "DETAIL_LIMIT", 10)
    out = imports.import_out(Tx(db), ctx, import_id)
    assert [r["record"] for r in out["created"]] == list(range(1, 11))
    assert out["details_truncated"] is True
    monkeypatch.setattr(imports, "DETAIL_LIMIT", 100)
    out = imports.import_out(Tx(db), ctx, import_id)
    assert [r["record"] for r in out["created"]] == list(range(1, 31))
    emails = {c["id"]: c["email"] for c in contacts(db, org)}
    assert [emails[uuid.UUID(r["contact_id"])] for r in out["created"]] == [
        f"c{i}@example.org" for i in range(30)]
