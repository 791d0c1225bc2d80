"""Imports run in the import worker process (services/contacts/import_worker.py), not inside the
contacts service: the service keeps answering while a big file imports, an import a dead worker
left `running` is run again, and a file that turns out malformed half-way writes nothing."""
import time

from psycopg2.extras import Json

from tests.contacts.upload import new_org, upload

MAPPING = {"email": "email", "name": "name", "phone": "phone"}


def leads(n, start=0):
    lines = ["email,name,phone,plan"]
    for i in range(start, start + n):
        lines.append(f"lead{i}@example.com,Lead {i},+1 202-555-{i % 10000:04d},"
                     f"{'gold' if i % 2 else 'basic'}")
    return ("\n".join(lines) + "\n").encode()


def wait_done(rpc, ctx, import_id, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        imp = rpc.contacts.get_import(ctx, import_id)
        if imp["status"] in ("completed", "failed"):
            return imp
        time.sleep(0.1)
    raise AssertionError(f"import {import_id} did not finish: {imp}")


def test_the_contacts_service_keeps_answering_while_a_large_file_imports(stack):
    ctx = new_org()
    with stack.rpc(timeout=60) as rpc:
        up = upload(rpc, ctx, leads(60000), "big.csv")
        job = rpc.contacts.import_contacts(ctx, {"upload_id": up["upload_id"], "mapping": MAPPING,
                                                 "mode": "job"})
        slowest, answered_while_running = 0.0, 0
        while True:
            started = time.time()
            imp = rpc.contacts.get_import(ctx, job["id"])
            rpc.contacts.list_contacts(ctx, {"limit": 5})
            slowest = max(slowest, time.time() - started)
            if imp["status"] in ("completed", "failed"):
                break
            answered_while_running += imp["status"] == "running"
            time.sleep(0.05)
    assert imp["status"] == "completed", imp
    assert imp["counts"]["created"] == 60000
    assert answered_while_running >= 1
    # The import used to hold the service's only OS thread for its whole duration.
    assert slowest < 3.0, slowest


def test_an_import_left_running_by_a_worker_that_died_is_run_again(stack):
    ctx = new_org()
    with stack.rpc() as rpc:
        up = upload(rpc, ctx, leads(300), "orphan.csv")
    conn = stack.db("contacts")
    conn.autocommit = True
    cur = conn.cursor()
    # A worker that claimed the import and is still alive holds its lock: nobody else runs it.
    owner = stack.db("contacts")
    owner.autocommit = True
    import_id = "7d3f0c1e-5b2a-4c1d-9e8f-0a1b2c3d4e5f"
    owner.cursor().execute("SELECT pg_advisory_lock(hashtextextended(%s::text, 7))", (import_id,))
    cur.execute("INSERT INTO imports (id, org_id, upload_id, filename, mapping, status, defaults)"
                " VALUES (%s, %s, %s, 'orphan.csv', %s, 'running', '{\"default_country\": \"US\"}')",
                (import_id, ctx["org_id"], up["upload_id"],
                 Json(dict(MAPPING, custom="rest"))))
    cur.execute("NOTIFY contacts_imports")
    time.sleep(3)  # longer than the worker's poll
    with stack.rpc() as rpc:
        assert rpc.contacts.get_import(ctx, import_id)["status"] == "running"
        # The worker dies: its connection, and the lock with it, go away.
        owner.close()
        imp = wait_done(rpc, ctx, import_id, timeout=30)
    assert imp["status"] == "completed", imp
    assert (imp["counts"]["created"], imp["rows_done"], imp["rows_total"]) == (300, 300, 300)
    cur.execute("SELECT count(*) FROM contacts WHERE org_id = %s", (ctx["org_id"],))
    assert cur.fetchone()[0] == 300
    conn.close()


def test_a_file_malformed_half_way_is_refused_and_writes_nothing(stack):
    ctx = new_org()
    # 2,000 good records, then a quoted cell over the 10 MB cell limit.
    data = leads(2000) + b'lead-x@example.com,"' + b"x" * (10 * 1024 * 1024 + 10) + b'",,\n'
    with stack.rpc(timeout=60) as rpc:
        up = upload(rpc, ctx, data, "broken.csv")
        job = rpc.contacts.import_contacts(ctx, {"upload_id": up["upload_id"], "mapping": MAPPING,
                                                 "mode": "job"})
        imp = wait_done(rpc, ctx, job["id"])
        assert imp["status"] == "failed"
        assert "the CSV is malformed" in imp["error"] and "field limit" in imp["error"]
        assert rpc.contacts.list_contacts(ctx, {"limit": 10})["contacts"] == []
        assert rpc.contacts.import_result_csv(ctx, job["id"]).splitlines() == [
            "record,outcome,contact_id,merged_into,reason,warnings"]


def test_a_stray_nul_byte_deep_in_a_file_is_dropped_not_fatal(stack):
    ctx = new_org()
    data = leads(2000) + b'nul@example.com,"Nu\x00ll Byte",+1 202 555 0100,gold\n'
    assert len(data) > 64 * 1024  # past the part checked for binary content when it arrives
    with stack.rpc() as rpc:
        up = upload(rpc, ctx, data, "nul.csv")
        imp = rpc.contacts.import_contacts(ctx, {"upload_id": up["upload_id"], "mapping": MAPPING})
        assert imp["status"] == "completed" and imp["counts"]["created"] == 2001
        page = rpc.contacts.list_contacts(ctx, {"q": "nul@example.com"})
    assert page["contacts"][0]["name"] == "Null Byte"
