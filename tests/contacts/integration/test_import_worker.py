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


def orphan(stack, ctx, upload_id, attempts):
    """An import a worker claimed `attempts` times and died during each (status running, its
    attempts counted, no lock held): what a file that kills the worker leaves behind."""
    import uuid
    conn = stack.db("contacts")
    conn.autocommit = True
    import_id = str(uuid.uuid4())
    conn.cursor().execute(
        "INSERT INTO imports (id, org_id, upload_id, filename, mapping, status, attempts, defaults)"
        " VALUES (%s, %s, %s, 'crash.csv', %s, 'running', %s, '{\"default_country\": \"US\"}')",
        (import_id, ctx["org_id"], upload_id, Json(dict(MAPPING, custom="rest")), attempts))
    conn.cursor().execute("NOTIFY contacts_imports")
    conn.close()
    return import_id


def test_each_claim_counts_an_attempt_and_a_third_attempt_still_runs(stack):
    ctx = new_org()
    with stack.rpc() as rpc:
        up = upload(rpc, ctx, leads(20), "fine.csv")
        normal = rpc.contacts.import_contacts(ctx, {"upload_id": up["upload_id"], "mapping": MAPPING})
        assert (normal["status"], normal["attempts"]) == ("completed", 1)
        import_id = orphan(stack, ctx, up["upload_id"], attempts=2)
        imp = wait_done(rpc, ctx, import_id, timeout=30)
    assert (imp["status"], imp["attempts"], imp["counts"]["unchanged"]) == ("completed", 3, 20)


def test_an_import_that_stopped_the_worker_three_times_is_failed_not_retried_forever(stack):
    ctx = new_org()
    with stack.rpc() as rpc:
        up = upload(rpc, ctx, leads(20), "crash.csv")
        import_id = orphan(stack, ctx, up["upload_id"], attempts=3)
        imp = wait_done(rpc, ctx, import_id, timeout=30)
        assert imp["status"] == "failed"
        assert imp["attempts"] == 3
        assert imp["error"].startswith("the import worker stopped during each of 3 attempts")
        assert rpc.contacts.list_contacts(ctx, {"limit": 5})["contacts"] == []
        time.sleep(2.5)  # a poll later it is still failed: nobody picked it up again
        assert rpc.contacts.get_import(ctx, import_id)["status"] == "failed"


def test_the_worker_reconnects_when_its_listening_connection_is_terminated(stack):
    conn = stack.db("contacts")
    conn.autocommit = True
    cur = conn.cursor()
    listening = "SELECT pid FROM pg_stat_activity WHERE datname = current_database()" \
                " AND application_name = 'contacts-importer-listen'"
    cur.execute(listening)
    pids = [r[0] for r in cur.fetchall()]
    assert len(pids) == 1
    cur.execute("SELECT pg_terminate_backend(%s)", (pids[0],))
    assert cur.fetchone()[0] is True
    deadline = time.time() + 15
    while time.time() < deadline:
        cur.execute(listening)
        again = [r[0] for r in cur.fetchall()]
        if again and again != pids:
            break
        time.sleep(0.2)
    conn.close()
    assert again and again != pids, "the import worker did not listen again"
    assert stack.procs["importer"].poll() is None, stack.log("importer")
    ctx = new_org()
    with stack.rpc() as rpc:
        imp = rpc.contacts.import_contacts(ctx, {"upload_id": upload(rpc, ctx, leads(50))["upload_id"],
                                                 "mapping": MAPPING})
    assert (imp["status"], imp["counts"]["created"]) == ("completed", 50)
    assert "lost its database connection" in stack.log("importer")


def test_a_stopped_worker_exits_promptly_instead_of_hanging_orphaned(stack):
    """SIGTERM (a deploy, the test stack's teardown) ends the worker and its normalising pool
    within seconds; it used to raise inside the signal handler and could hang at exit forever."""
    import os
    import signal
    import subprocess
    import sys
    env = dict(stack.env(), IMPORT_NORMALISERS="2")
    proc = subprocess.Popen([sys.executable, "-m", "services.contacts.import_worker"],
                            cwd=os.path.dirname(os.path.dirname(os.path.dirname(
                                os.path.dirname(os.path.abspath(__file__))))),
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 20
        output = b""
        while time.time() < deadline and b"import worker ready" not in output:
            output += proc.stdout.read1(4096) if proc.poll() is None else proc.stdout.read()
        assert b"import worker ready" in output, output
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                  text=True).stdout.split()
        assert len(children) == 2  # the normalising pool
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        time.sleep(0.5)
        assert [c for c in children if os.path.exists(f"/proc/{c}")
                and open(f"/proc/{c}/stat").read().split()[2] != "Z"] == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_chunks_stored_out_of_order_make_the_whole_file_and_a_chunk_is_stored_once(stack):
    """The gateway sends a few chunks at once, so they may be stored in any order; the import
    reads them by number. A chunk sent twice, or numbered 0 (that one starts the upload), is
    refused; so is a chunk for an upload of another organization."""
    import base64

    ctx, other = new_org(), new_org()
    data = leads(30)
    parts = [data[:400], data[400:800], data[800:]]
    b64 = [base64.b64encode(p).decode() for p in parts]
    with stack.rpc(timeout=60) as rpc:
        up = rpc.contacts.begin_upload(ctx, {"filename": "parts.csv", "chunk": b64[0]})
        assert rpc.contacts.append_upload(ctx, up["upload_id"], 2, b64[2])["chunks"] == 2
        assert rpc.contacts.append_upload(ctx, up["upload_id"], 1, b64[1]) == {
            "upload_id": up["upload_id"], "size": len(data), "chunks": 3}
        for seq, who, refusal in ((1, ctx, "Invalid"), (0, ctx, "Invalid"), (3, other, "NotFound")):
            try:
                rpc.contacts.append_upload(who, up["upload_id"], seq, b64[1])
                raise AssertionError(f"chunk {seq} was taken")
            except Exception as err:  # RemoteError, or the error itself once its class is known here
                assert getattr(err, "exc_type", type(err).__name__) == refusal, err
        job = rpc.contacts.import_contacts(ctx, {"upload_id": up["upload_id"], "mapping": MAPPING,
                                                 "mode": "job"})
        done = wait_done(rpc, ctx, job["id"])
    assert done["status"] == "completed" and done["counts"]["created"] == 30, done


def test_two_imports_of_one_organization_at_once_both_complete_one_after_the_other(stack):
    """The worker runs two imports at once; two of the same organization with people in common
    must not both create those people (the second would fail on the unique e-mail): the second
    waits for the first and finds its contacts."""
    ctx = new_org()
    with stack.rpc(timeout=60) as rpc:
        first = upload(rpc, ctx, leads(20000), "a.csv")
        second = upload(rpc, ctx, leads(20000, start=15000), "b.csv")
        jobs = [rpc.contacts.import_contacts(ctx, {"upload_id": up["upload_id"], "mapping": MAPPING,
                                                   "mode": "job"}) for up in (first, second)]
        done = [wait_done(rpc, ctx, job["id"]) for job in jobs]
        total = rpc.contacts.count_contacts(ctx)["total"]
    assert [d["status"] for d in done] == ["completed", "completed"], done
    assert sum(d["counts"]["created"] for d in done) == 35000
    assert sorted(d["counts"]["unchanged"] for d in done) == [0, 5000]
    assert total == 35000


def test_an_upload_missing_a_chunk_fails_its_import_rather_than_import_part_of_the_file(stack):
    import base64

    ctx = new_org()
    data = leads(30)
    parts = [base64.b64encode(p).decode() for p in (data[:400], data[400:800], data[800:])]
    with stack.rpc(timeout=60) as rpc:
        up = rpc.contacts.begin_upload(ctx, {"filename": "gap.csv", "chunk": parts[0]})
        rpc.contacts.append_upload(ctx, up["upload_id"], 2, parts[2])  # chunk 1 never came
        try:
            job = rpc.contacts.import_contacts(ctx, {"upload_id": up["upload_id"],
                                                     "mapping": MAPPING, "mode": "job"})
            raise AssertionError(f"queued: {job}")
        except Exception as err:  # refused when the import is asked for: the reader reads ahead
            assert "the upload is incomplete" in str(err), err  # errors.upload_id: chunk 1 is missing
        listed = rpc.contacts.list_contacts(ctx, {"limit": 5})
    assert listed["contacts"] == []
