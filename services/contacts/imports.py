"""Uploads (chunks stored in the contacts schema, so the gateway and this service may run on
different hosts) and imports: open the upload as a table, check the mapping, queue the import for
the import worker (import_worker.py runs it with bulk.py), report progress and per-record results."""
import base64
import binascii
import csv
import io

from psycopg2.extras import Json

from services.common.errors import Invalid, NotFound
from services.contacts import importer, reader
from services.contacts.store import new_id

CHUNK_LIMIT = 4 * 1024 * 1024
MAX_UPLOAD = 60 * 1024 * 1024
# Files up to this size import inside the request; bigger ones run as a job.
SYNC_LIMIT = 2 * 1024 * 1024


def _decode(chunk_b64):
    try:
        data = base64.b64decode(chunk_b64, validate=True)
    except (binascii.Error, ValueError):
        raise Invalid("bad chunk", errors={"chunk": ["not base64"]})
    if len(data) > CHUNK_LIMIT:
        raise Invalid("chunk too large", errors={"chunk": [f"at most {CHUNK_LIMIT} bytes per chunk"]})
    return data


def begin_upload(tx, ctx, data):
    """Stores the first chunk after checking it looks like CSV or XLSX; answers with the upload id
    (and, for CSV, the detected columns and a suggested mapping)."""
    first = _decode(data["chunk"])
    kind = reader.sniff_kind(first)
    upload_id = new_id()
    tx.execute("INSERT INTO uploads (id, org_id, filename, kind, size, chunks) VALUES (%s, %s, %s, %s, %s, 1)",
               (upload_id, ctx["org_id"], data.get("filename"), kind, len(first)))
    tx.execute("INSERT INTO upload_chunks (upload_id, seq, data) VALUES (%s, 0, %s)", (upload_id, first))
    out = {"upload_id": str(upload_id), "kind": kind}
    if kind == "csv":
        table = reader.open_table([first])
        if data.get("last"):
            # The whole file: a header with no records (or a malformed first record) is refused
            # now, not at import.
            _refuse_without_records(table)
        table.close()
        out.update(columns=table.columns, delimiter=table.delimiter, encoding=table.encoding,
                   suggested_mapping=importer.suggest_mapping(table.columns))
    return out


def append_upload(tx, ctx, upload_id, seq, chunk_b64):
    """Stores chunk `seq` (1, 2, ...: the first came with begin_upload). Chunks may arrive in any
    order (the gateway sends a few at once): the chunk is written first, without holding the
    upload's row, which is updated (locked only until commit) after; a chunk already stored is
    refused. The upload id reaches a client only once every chunk is stored."""
    data = _decode(chunk_b64)
    if seq < 1:
        raise Invalid("bad chunk", errors={"seq": ["chunk 0 comes with the upload's start"]})
    exists = tx.one("SELECT 1 AS one FROM uploads WHERE org_id = %s AND id = %s",
                    (ctx["org_id"], str(upload_id)))
    if exists is None:
        raise NotFound("upload not found")
    stored = tx.one("INSERT INTO upload_chunks (upload_id, seq, data) VALUES (%s, %s, %s)"
                    " ON CONFLICT DO NOTHING RETURNING seq", (str(upload_id), seq, data))
    if stored is None:
        raise Invalid("chunk already stored", errors={"seq": [f"chunk {seq} is already stored"]})
    row = tx.one("UPDATE uploads SET size = size + %s, chunks = chunks + 1 WHERE id = %s"
                 " RETURNING size, chunks", (len(data), str(upload_id)))
    if row is None:
        raise NotFound("upload not found")  # deleted meanwhile
    if row["size"] > MAX_UPLOAD:
        raise Invalid("file too large", errors={"file": [f"at most {MAX_UPLOAD // (1024 * 1024)} MB"]})
    return {"upload_id": str(upload_id), "size": row["size"], "chunks": row["chunks"]}


def describe_upload(tx, ctx, upload_id):
    """Columns and suggested mapping of a whole upload (XLSX needs all its bytes)."""
    upload = get_upload(tx, ctx, upload_id)
    table = reader.open_table(chunks(tx, upload["id"]))
    table.close()
    return {"upload_id": str(upload["id"]), "kind": table.kind, "columns": table.columns,
            "delimiter": table.delimiter, "encoding": table.encoding, "size": upload["size"],
            "suggested_mapping": importer.suggest_mapping(table.columns)}


def get_upload(tx, ctx, upload_id):
    row = tx.one("SELECT * FROM uploads WHERE org_id = %s AND id = %s", (ctx["org_id"], str(upload_id)))
    if row is None:
        raise NotFound("upload not found", errors={"upload_id": [
            "no such upload in this organization (unused uploads are deleted after 24 hours)"]})
    return row


def chunks(tx, upload_id):
    """The upload's bytes, one stored chunk at a time (never the whole file in memory). Chunks
    are stored in any order: a number missing below the upload's count of chunks is Invalid
    (the file would end early), never the end of the file."""
    upload = tx.one("SELECT chunks FROM uploads WHERE id = %s", (str(upload_id),))
    stored = upload["chunks"] if upload else 0
    seq = 0
    while True:
        row = tx.one("SELECT data FROM upload_chunks WHERE upload_id = %s AND seq = %s",
                     (str(upload_id), seq))
        if row is None:
            if seq < stored:
                raise Invalid("the upload is incomplete", errors={"upload_id": [
                    f"chunk {seq} is missing ({stored} stored): upload the file again"]})
            return
        yield bytes(row["data"])
        seq += 1


def create_import(tx, ctx, data, defaults=None):
    """Checks the file and mapping (Invalid, nothing written, when they do not fit) and records a
    queued import (with the organization defaults it runs with) for the import worker."""
    upload = get_upload(tx, ctx, data["upload_id"])
    mapping = _mapping(data["mapping"])
    table = reader.open_table(chunks(tx, upload["id"]))
    try:
        importer.check_mapping(mapping, table.columns)
        _refuse_without_records(table)
    finally:
        table.close()
    import_id = new_id()
    tx.execute("INSERT INTO imports (id, org_id, upload_id, data_source_id, filename, mapping,"
               " defaults) VALUES (%s, %s, %s, %s, %s, %s, %s)",
               (import_id, ctx["org_id"], upload["id"],
                str(data["data_source_id"]) if data.get("data_source_id") else None,
                upload["filename"], Json(mapping), Json(defaults or {})))
    wake_worker(tx)
    return import_id, upload


def _refuse_without_records(table):
    """Invalid unless the opened file has a first record (read, then put back by closing): a
    header alone is nothing to import; a malformed first record is said in the message too."""
    rows = table.value_rows()
    try:
        first = next(rows, None)
    except Invalid as err:
        raise Invalid(err.summary(), errors=err.errors)
    finally:
        rows.close()
    if first is None:
        raise Invalid("the file has no records", errors={"file": [
            "the file has a header row but no records"]})


def _mapping(mapping):
    out = {k: v for k, v in mapping.items() if v not in (None, "", [])}
    out.setdefault("custom", "rest")
    return out


def estimate_records(tx, upload_id):
    """The progress total while an import runs: for CSV the line ends after the header, estimated
    from the first chunk's bytes per line times the upload's size (cheap: the file is not read
    twice); the exact count replaces it at the end. XLSX rows are counted."""
    upload = tx.one("SELECT kind, size FROM uploads WHERE id = %s", (str(upload_id),))
    if upload is None:
        return 0
    if upload["kind"] == "xlsx":
        table = reader.open_table(chunks(tx, upload_id))
        return sum(1 for _ in table.records())
    first = tx.one("SELECT data FROM upload_chunks WHERE upload_id = %s AND seq = 0", (str(upload_id),))
    if first is None:
        return 0
    data = bytes(first["data"])
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    if len(data) >= upload["size"]:
        return max(lines - 1, 0)
    return max(round(lines * upload["size"] / len(data)) - 1, 0)


def wake_worker(tx):
    """Tells the import worker (services/contacts/import_worker.py) there is work, on commit."""
    tx.execute("NOTIFY contacts_imports")


def finish(tx, imp, counts):
    """Marks a run import completed with its counts (and its data source's last result); the
    `written` summary bulk.run counted is kept apart."""
    counts = dict(counts)
    written = counts.pop("written", None)
    tx.execute("UPDATE imports SET status = 'completed', counts = %s, written = %s, rows_done = %s,"
               " rows_total = %s, error = NULL, finished_at = clock_timestamp() WHERE id = %s",
               (Json(counts), Json(written) if written else None, counts["records"],
                counts["records"], imp["id"]))
    if imp["data_source_id"]:
        record_sync(tx, imp["data_source_id"], dict(counts, status="completed"))


def record_sync(tx, source_id, result):
    """A data source's last sync: when, and its result ({status: completed, counts...} or
    {status: failed, error})."""
    tx.execute("UPDATE data_sources SET last_sync_at = now(), last_result = %s WHERE id = %s",
               (Json(result), str(source_id)))


DETAIL_LIMIT = 1000


def import_out(tx, ctx, import_id, detail=True):
    imp = tx.one("SELECT * FROM imports WHERE org_id = %s AND id = %s", (ctx["org_id"], str(import_id)))
    if imp is None:
        raise NotFound("import not found")
    out = {"id": str(imp["id"]), "status": imp["status"], "filename": imp["filename"],
           "mapping": imp["mapping"], "rows_total": imp["rows_total"], "rows_done": imp["rows_done"],
           "counts": imp["counts"], "error": imp["error"], "attempts": imp.get("attempts", 0),
           "data_source_id": str(imp["data_source_id"]) if imp["data_source_id"] else None,
           "created_at": imp["created_at"].isoformat(),
           "finished_at": imp["finished_at"].isoformat() if imp["finished_at"] else None}
    if detail and imp["status"] == "completed":
        # Each list holds the first DETAIL_LIMIT records of its outcome; details_truncated says
        # when any list (or warnings) has more: the CSV result has every record.
        truncated = False
        for outcome in OUTCOMES:
            if outcome == "created":
                rows = _first_created(tx, imp["id"], DETAIL_LIMIT + 1)
            else:
                rows = tx.all("SELECT record, reason, merged_into, contact_id FROM import_rows"
                              " WHERE import_id = %s AND outcome = %s ORDER BY record LIMIT %s",
                              (imp["id"], outcome, DETAIL_LIMIT + 1))
            truncated |= len(rows) > DETAIL_LIMIT
            out[outcome] = [_row_out(r) for r in rows[:DETAIL_LIMIT]]
        warned = tx.all("SELECT record, warnings FROM import_rows WHERE import_id = %s"
                        " AND warnings IS NOT NULL ORDER BY record LIMIT %s",
                        (imp["id"], DETAIL_LIMIT + 1))
        truncated |= len(warned) > DETAIL_LIMIT
        out["warnings"] = [dict(w, record=r["record"]) for r in warned[:DETAIL_LIMIT]
                           for w in r["warnings"]]
        out["details_truncated"] = truncated
        out["summary"] = summary(tx, imp)
    return out


OUTCOMES = ("created", "updated", "unchanged", "merged", "rejected")


def _first_created(tx, import_id, limit):
    """The first `limit` created records (by record number): those with warnings (import_rows)
    and the batches of import_created in order, read only until `limit` are in hand (a batch's
    records run before the next batch's), not every batch of a million-row import."""
    rows = tx.all("SELECT record, reason, merged_into, contact_id FROM import_rows"
                  " WHERE import_id = %s AND outcome = 'created' ORDER BY record LIMIT %s",
                  (import_id, limit))
    compact, after = [], 0
    while len(compact) < limit:
        batch = tx.one("SELECT first_record, records, contact_ids::text[] AS ids FROM import_created"
                       " WHERE import_id = %s AND first_record > %s ORDER BY first_record LIMIT 1",
                       (import_id, after))
        if batch is None:
            break
        compact.extend({"record": r, "reason": None, "merged_into": None, "contact_id": c}
                       for r, c in zip(batch["records"], batch["ids"]))
        after = batch["first_record"]
    return sorted(list(rows) + compact, key=lambda r: r["record"])[:limit]
KEY_FIELDS = ("email", "phone", "name", "timezone")


def summary(tx, imp):
    """What the mapping covered and what the imported contacts still lack (spec: upload success
    is not mapping success): key fields mapped to a column or not, and how many of the contacts
    this import wrote have no e-mail, no phone or no time zone of their own."""
    mapping = imp["mapping"] or {}
    mapped = {}
    for field in KEY_FIELDS:
        columns = [mapping.get(f) for f in ((field,) if field != "name" else ("name", "first_name", "last_name"))]
        columns = [c for c in columns if c]
        if columns:
            mapped[field] = columns[0] if len(columns) == 1 else columns
    written = imp.get("written")
    if written:
        return {"mapped": mapped, "unmapped": [f for f in KEY_FIELDS if f not in mapped],
                "contacts": written["contacts"], "contacts_without": written["without"]}
    # An import finished before `written` was kept: counted from its outcomes.
    row = tx.one(
        "SELECT count(*) AS contacts, count(*) FILTER (WHERE c.email IS NULL) AS no_email,"
        " count(*) FILTER (WHERE c.phone IS NULL) AS no_phone,"
        " count(*) FILTER (WHERE c.timezone IS NULL) AS no_timezone"
        " FROM contacts c WHERE c.org_id = %s AND c.id IN (SELECT contact_id FROM import_outcomes"
        " WHERE import_id = %s AND contact_id IS NOT NULL)", (imp["org_id"], imp["id"]))
    return {"mapped": mapped, "unmapped": [f for f in KEY_FIELDS if f not in mapped],
            "contacts": row["contacts"],
            "contacts_without": {"email": row["no_email"], "phone": row["no_phone"],
                                 "timezone": row["no_timezone"]}}


def _row_out(r):
    out = {"record": r["record"]}
    if r["reason"]:
        out["reason"] = r["reason"]
    if r["merged_into"]:
        out["merged_into"] = r["merged_into"]
    if r["contact_id"]:
        out["contact_id"] = str(r["contact_id"])
    return out


def result_csv(tx, ctx, import_id):
    """Every record's outcome as CSV text: record, outcome, contact_id, merged_into, reason, warnings."""
    import_out(tx, ctx, import_id, detail=False)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["record", "outcome", "contact_id", "merged_into", "reason", "warnings"])
    cur = tx.cursor()
    cur.execute("SELECT record, outcome, contact_id, merged_into, reason, warnings FROM import_outcomes"
                " WHERE import_id = %s ORDER BY record", (str(import_id),))
    for r in cur:
        w.writerow([r["record"], r["outcome"], r["contact_id"] or "", r["merged_into"] or "",
                    r["reason"] or "", "; ".join(f"{x['field']}: {x['message']}" for x in (r["warnings"] or []))])
    return buf.getvalue()


def list_imports(tx, ctx, data_source_id=None):
    sql = "SELECT id FROM imports WHERE org_id = %s"
    params = [ctx["org_id"]]
    if data_source_id:
        sql += " AND data_source_id = %s"
        params.append(str(data_source_id))
    rows = tx.all(sql + " ORDER BY created_at DESC LIMIT 100", params)
    return [import_out(tx, ctx, r["id"], detail=False) for r in rows]


UPLOAD_TTL_HOURS = 24


def discard_upload(tx, ctx, upload_id):
    """Deletes the organization's upload `upload_id` unless an import uses it. -> deleted?"""
    cur = tx.execute("DELETE FROM uploads u WHERE u.org_id = %s AND u.id = %s AND NOT EXISTS"
                     " (SELECT 1 FROM imports i WHERE i.upload_id = u.id)",
                     (ctx["org_id"], str(upload_id)))
    return cur.rowcount == 1


def purge_stale_uploads(tx, hours=UPLOAD_TTL_HOURS, batch=100):
    """Deletes uploads no import uses that are older than `hours` (a refused file, a mapping
    never sent): the bytes of a file that was not imported are not kept. -> how many."""
    cur = tx.execute(
        "DELETE FROM uploads WHERE id IN (SELECT u.id FROM uploads u WHERE u.created_at <"
        " now() - make_interval(hours => %s) AND NOT EXISTS (SELECT 1 FROM imports i"
        " WHERE i.upload_id = u.id) ORDER BY u.created_at LIMIT %s)", (hours, batch))
    return cur.rowcount

