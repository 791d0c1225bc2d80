"""The contacts import worker: a plain OS process (no eventlet, no nameko) that runs queued imports.

    python -m services.contacts.import_worker            # the Procfile's `importer` entry

The contacts service only records an import (status `queued`) and NOTIFYs `contacts_imports`;
this process claims it and runs it with COPY and set-based SQL (services/contacts/bulk.py), so a
CPU-bound import never stalls the service's eventlet hub (AMQP heartbeats, other RPCs).

Claiming: a job is owned by whoever holds the session advisory lock keyed by its id, taken on a
connection kept open for the job's duration. A worker that dies loses its connection, so the lock
goes with it and a job left `running` is claimed again (by another worker or this one restarted)
and re-run from the start: its work was one transaction, rolled back when the worker died.
Up to IMPORT_WORKER_JOBS (default 2) imports run at once, each in its own thread, so a small
in-request import does not wait behind a large job. Files from 1 MB normalise their records in a
pool of IMPORT_NORMALISERS processes (default: one per core) while this one reads, deduplicates
and COPYs.

The worker outlives its database: if the listening connection drops (a restart, a failover, an
administrator's pg_terminate_backend) it reconnects with a growing pause instead of exiting. Each
claim counts an attempt on the import row; a job that has stopped the worker MAX_ATTEMPTS times
(a file that kills the process every time) is failed with a clear error rather than retried
forever."""
import logging
import multiprocessing
import os
import select
import signal
import threading
import time

import psycopg2
import psycopg2.extras

from services.common.config import database_url, load_config
from services.contacts import bulk, imports

log = logging.getLogger("services.contacts.import_worker")
CHANNEL = "contacts_imports"
POLL_SECONDS = 2.0
PROGRESS_EVERY = 0.25  # seconds between progress writes
LOCK_SQL = "SELECT pg_try_advisory_lock(hashtextextended(%s::text, 7))"
MAX_ATTEMPTS = 3
RECONNECT_FIRST, RECONNECT_MAX = 0.5, 30.0  # seconds between reconnection attempts, doubling
LISTEN_NAME = "contacts-importer-listen"  # application_name of the listening connection

psycopg2.extras.register_uuid()


# An import's connection: temporary tables held in memory, hash joins and sorts of a whole file
# in memory, and no JIT (compiling the merge statements costs seconds and saves nothing here).
JOB_OPTIONS = "-c temp_buffers=256MB -c work_mem=64MB -c jit=off"


class Tx:
    """The SQL helpers of services.common.db.Tx the import code uses, without importing nameko
    (and eventlet) into this process and its normalising pool."""

    def __init__(self, conn):
        self.conn = conn

    def cursor(self):
        return self.conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor)

    def execute(self, sql, params=None):
        cur = self.cursor()
        cur.execute(sql, params)
        return cur

    def one(self, sql, params=None):
        return self.execute(sql, params).fetchone()

    def all(self, sql, params=None):
        return self.execute(sql, params).fetchall()


def connect(dsn, job=False, name="contacts-importer"):
    return psycopg2.connect(dsn, application_name=name,
                            options="-c search_path=contacts" + (" " + JOB_OPTIONS if job else ""))


class Worker:
    def __init__(self, dsn, jobs=2, pool=None):
        self.dsn = dsn
        self.pool = pool
        self.slots = threading.Semaphore(jobs)
        self.running = set()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        # stop() writes a byte here so the loop's select returns at once, not after POLL_SECONDS.
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)

    # -- the loop -------------------------------------------------------------------------------
    def serve(self):
        """Claims work when notified and every POLL_SECONDS, until stopped. A lost database
        connection is reopened after a pause (doubling up to RECONNECT_MAX), never fatal."""
        pause = RECONNECT_FIRST
        while not self.stopping.is_set():
            listen = None
            try:
                listen = connect(self.dsn, name=LISTEN_NAME)
                listen.autocommit = True
                listen.cursor().execute(f"LISTEN {CHANNEL}")
                log.info("import worker ready")
                pause = RECONNECT_FIRST
                while not self.stopping.is_set():
                    self.claim_all()
                    ready = select.select([listen, self.wake_r], [], [], POLL_SECONDS)[0]
                    if listen in ready:
                        listen.poll()
                        listen.notifies.clear()
            except (psycopg2.OperationalError, psycopg2.InterfaceError) as err:
                log.warning("import worker lost its database connection (%s); reconnecting in"
                            " %.1f s", str(err).strip().splitlines()[0] if str(err).strip() else
                            type(err).__name__, pause)
                self.stopping.wait(pause)
                pause = min(pause * 2, RECONNECT_MAX)
            finally:
                if listen is not None:
                    try:
                        listen.close()
                    except psycopg2.Error:
                        pass

    def release_running(self):
        """On a requested stop (deploy, restart): the imports this worker is running will run
        again elsewhere; a stop it was asked for is not the import's fault, so the attempt it
        made does not count."""
        with self.lock:
            ids = list(self.running)
        if not ids:
            return
        try:
            conn = connect(self.dsn)
            conn.autocommit = True
            conn.cursor().execute("UPDATE imports SET attempts = attempts - 1 WHERE id = ANY(%s::uuid[])"
                                  " AND status = 'running' AND attempts > 0",
                                  ([str(i) for i in ids],))
            conn.close()
        except psycopg2.Error as err:
            log.warning("could not uncount the stopped imports' attempts: %s", err)

    def claim_all(self):
        """Starts every claimable job (queued, or running with no live owner) while slots last."""
        try:
            conn = connect(self.dsn)
        except psycopg2.OperationalError as err:
            log.warning("database unavailable: %s", err)
            return
        try:
            conn.autocommit = True
            cur = conn.cursor()
            cur.execute("SELECT id FROM imports WHERE status IN ('queued', 'running')"
                        " ORDER BY created_at, id LIMIT 50")
            ids = [r[0] for r in cur.fetchall()]
        finally:
            conn.close()
        for import_id in ids:
            with self.lock:
                if import_id in self.running:
                    continue
            if not self.slots.acquire(blocking=False):
                return
            try:
                owner = connect(self.dsn)
                owner.autocommit = True
                cur = owner.cursor()
                cur.execute(LOCK_SQL, (str(import_id),))
                locked = cur.fetchone()[0]
            except psycopg2.Error as err:
                self.slots.release()
                log.warning("database unavailable: %s", err)
                return
            if not locked:
                owner.close()
                self.slots.release()
                continue
            with self.lock:
                self.running.add(import_id)
            threading.Thread(target=self._job, args=(owner, import_id), daemon=True).start()

    def _job(self, owner, import_id):
        try:
            run_job(self.dsn, owner, import_id, self.pool)
        except Exception:
            log.exception("import %s: worker error", import_id)
        finally:
            owner.close()  # releases the advisory lock
            with self.lock:
                self.running.discard(import_id)
            self.slots.release()


def run_job(dsn, owner, import_id, pool=None):
    """Runs one claimed import. `owner` (autocommit, holding the job's lock) writes the status
    and progress the API shows while the import's own transaction is still open."""
    ocur = owner.cursor(cursor_factory=psycopg2.extras.RealDictCursor)
    # Claimed: one more attempt (committed at once, so it counts even if this process dies).
    ocur.execute("UPDATE imports SET attempts = attempts + 1 WHERE id = %s"
                 " AND status IN ('queued', 'running') RETURNING *", (import_id,))
    imp = ocur.fetchone()
    if imp is None:
        return  # finished meanwhile (another worker) or deleted
    if imp["attempts"] > MAX_ATTEMPTS:
        log.error("import %s stopped the import worker %d times: failing it", import_id,
                  imp["attempts"] - 1)
        ocur.execute("UPDATE imports SET status = 'failed', attempts = %s, error = %s,"
                     " finished_at = now() WHERE id = %s",
                     (MAX_ATTEMPTS, f"the import worker stopped during each of {MAX_ATTEMPTS}"
                      " attempts at this import (the file may be too large or crash the reader);"
                      " nothing was imported", import_id))
        return
    if imp["status"] == "running":
        log.warning("import %s was left running by a worker that stopped: running it again"
                    " (attempt %d of %d)", import_id, imp["attempts"], MAX_ATTEMPTS)
    started = time.monotonic()
    conn = connect(dsn, job=True)
    reading = None
    try:
        tx = Tx(conn)
        total = imports.estimate_records(tx, imp["upload_id"]) if imp["upload_id"] else 0
        conn.commit()
        ocur.execute("UPDATE imports SET status = 'running', rows_total = %s, rows_done = 0"
                     " WHERE id = %s", (total, import_id))
        last = [0.0]

        def progress(done):
            now = time.monotonic()
            if now - last[0] >= PROGRESS_EVERY:
                last[0] = now
                ocur.execute("UPDATE imports SET rows_done = %s,"
                             " rows_total = GREATEST(rows_total, %s) WHERE id = %s",
                             (done, done, import_id))

        try:
            if imp["upload_id"] is None:
                raise imports.Invalid("the uploaded file is gone", errors={"upload_id": ["deleted"]})
            defaults = imp.get("defaults") or {"default_country": "US"}
            size = tx.one("SELECT size FROM uploads WHERE id = %s", (imp["upload_id"],))["size"]
            if size >= bulk.PARALLEL_BYTES and pool is not None:
                # The import's connection is its writing thread's: the file is read on another.
                reading = connect(dsn, name="contacts-importer-read")
                reading.set_session(readonly=True, autocommit=True)
                counts = bulk.run(tx, imp, defaults, imports.chunks(Tx(reading), imp["upload_id"]),
                                  progress, pool)
            else:
                counts = bulk.run(tx, imp, defaults, imports.chunks(tx, imp["upload_id"]), progress)
            imports.finish(tx, imp, counts)
            conn.commit()
        except Exception as err:
            conn.rollback()
            if not isinstance(err, imports.Invalid):
                log.exception("import %s failed", import_id)
            message = err.summary() if isinstance(err, imports.Invalid) else "the import failed"
            ocur.execute("UPDATE imports SET status = 'failed', error = %s, finished_at = now()"
                         " WHERE id = %s", (message, import_id))
            if imp["data_source_id"]:
                imports.record_sync(Tx(owner), imp["data_source_id"],
                                    {"status": "failed", "error": message, "import_id": str(import_id)})
            return
        log.info("import %s: %s records in %.2f s", import_id, counts["records"],
                 time.monotonic() - started)
    finally:
        conn.close()
        if reading is not None:
            reading.close()


def main():
    config = load_config()
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # Normalising processes, forked now: before any thread or database connection exists.
    processes = int(os.environ.get("IMPORT_NORMALISERS", str(os.cpu_count() or 2)))
    pool = multiprocessing.get_context("fork").Pool(processes) if processes > 1 else None
    worker = Worker(database_url(config, "contacts"), int(os.environ.get("IMPORT_WORKER_JOBS", "2")),
                    pool)

    def stop(signum, frame):
        # Only a flag: raising SystemExit here (in whatever frame the signal lands, perhaps
        # holding a lock of the pool or of logging) left the process hung at exit, orphaned.
        # The byte wakes the loop's select at once.
        worker.stopping.set()
        try:
            os.write(worker.wake_w, b"x")
        except OSError:
            pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    worker.serve()
    log.info("import worker stopping")
    worker.release_running()
    shutdown(pool)


def shutdown(pool, timeout=1.5):
    """Ends the process without waiting on anything that may never finish: the normalising pool
    is terminated (bounded), running imports' transactions roll back with their connections (the
    jobs stay `running` and are claimed again: their attempt counted), and no atexit handler runs."""
    if pool is not None:
        ender = threading.Thread(target=pool.terminate, daemon=True)
        ender.start()
        ender.join(timeout)
    logging.shutdown()
    os._exit(0)


if __name__ == "__main__":
    main()
