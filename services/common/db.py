"""The database dependency: a connection pool per container, one connection per worker, explicit
transactions that commit or roll back as a whole, and outbox events written inside them.

    with self.db.transaction() as tx:
        tx.execute("UPDATE ...", params)
        tx.emit("run_queued", {"org_id": ..., "run_id": ...})

Commit happens when the `with` block ends, before the RPC reply is sent (nameko sends replies
before dependency `worker_result` hooks run, so committing there would acknowledge work that could
still roll back). Events emitted in a transaction are published right after it commits; the
`relay` timer publishes whatever a crash left behind.
"""
import contextlib
import datetime
import json
import logging
import uuid

import psycopg2
import psycopg2.extras
import psycopg2.pool
from nameko.events import EventDispatcher

from services.common.config import check_secrets, database_url

log = logging.getLogger(__name__)

psycopg2.extras.register_uuid()
RELAY_BATCH = 500


def connect(dsn, schema):
    """A plain connection whose search_path is the service's schema (scripts, migrations, tests)."""
    return psycopg2.connect(dsn, options=f"-c search_path={schema}")


class Tx:
    """One transaction on one connection. SQL helpers return dict rows."""

    def __init__(self, conn):
        self.conn = conn
        self.events = []

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

    def values(self, sql, rows, template=None, page_size=1000, fetch=False):
        """Bulk insert/update with execute_values; `fetch` returns RETURNING rows."""
        cur = self.cursor()
        result = psycopg2.extras.execute_values(
            cur, sql, rows, template=template, page_size=page_size, fetch=fetch
        )
        return result if fetch else cur.rowcount

    def emit(self, event_type, payload):
        """Write an event to the outbox in this transaction. Payloads carry org_id and get event_id."""
        if "org_id" not in payload:
            raise ValueError(f"event {event_type} has no org_id")
        event_id = str(uuid.uuid4())
        body = dict(payload, event_id=event_id)
        # When it happened, not when a consumer gets to it (reporting buckets days by this).
        body.setdefault("occurred_at", datetime.datetime.now(datetime.timezone.utc).isoformat())
        self.execute(
            "INSERT INTO outbox (event_id, event_type, payload) VALUES (%s, %s, %s)",
            (event_id, event_type, json.dumps(body, default=str)),
        )
        self.events.append(event_id)
        return event_id

    def first_time(self, event_id, handler):
        """The idempotent-handler guard: True only the first time this handler sees this event."""
        row = self.one(
            "INSERT INTO processed_events (event_id, handler) VALUES (%s, %s) "
            "ON CONFLICT DO NOTHING RETURNING event_id",
            (event_id, handler),
        )
        return row is not None


class Database(EventDispatcher):
    """`db = Database("contacts")` on a service class. It is an EventDispatcher too, so the
    outbox relay publishes as `<service>.<event_type>` with nameko's own publisher (confirms on)."""

    def __init__(self, service, max_connections=None):
        super().__init__()
        self.service = service
        self.max_connections = max_connections
        self.pool = None

    def setup(self):
        super().setup()
        config = self.container.config
        check_secrets(config)
        size = self.max_connections or config.get("max_workers", 10) + 2
        self.pool = psycopg2.pool.ThreadedConnectionPool(
            1, size, database_url(config, self.service),
            options=f"-c search_path={self.service}",
        )

    def stop(self):
        if self.pool:
            self.pool.closeall()
            self.pool = None
        super().stop()

    def kill(self):
        self.stop()

    def get_dependency(self, worker_ctx):
        return Session(self, worker_ctx, super().get_dependency(worker_ctx))


class Session:
    """What a worker sees as `self.db`: transactions on the worker's own connection."""

    def __init__(self, provider, worker_ctx, dispatch):
        self.provider = provider
        self.worker_ctx = worker_ctx
        self.dispatch = dispatch

    @contextlib.contextmanager
    def transaction(self):
        conn = self.provider.pool.getconn()
        tx = Tx(conn)
        try:
            yield tx
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            self.provider.pool.putconn(conn)
        if tx.events:
            self.relay(only=tx.events)

    def relay(self, only=None):
        """Publish unpublished outbox rows; safe on every replica at once (SKIP LOCKED).
        `only`: just these event ids (what a transaction just committed) — a request never
        carries the backlog of others; the timer publishes that."""
        dispatch = self.dispatch
        conn = self.provider.pool.getconn()
        published = 0
        try:
            while True:
                tx = Tx(conn)
                if only is not None:
                    rows = tx.all(
                        "SELECT id, event_type, payload FROM outbox WHERE published_at IS NULL "
                        "AND event_id = ANY(%s::uuid[]) ORDER BY id FOR UPDATE SKIP LOCKED",
                        (list(only),),
                    )
                else:
                    rows = tx.all(
                        "SELECT id, event_type, payload FROM outbox WHERE published_at IS NULL "
                        "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
                        (RELAY_BATCH,),
                    )
                if not rows:
                    conn.commit()
                    break
                for row in rows:
                    dispatch(row["event_type"], row["payload"])
                tx.execute(
                    "UPDATE outbox SET published_at = now() WHERE id = ANY(%s)",
                    ([r["id"] for r in rows],),
                )
                conn.commit()
                published += len(rows)
                if only is not None:
                    break
        except Exception:
            conn.rollback()
            log.exception("outbox relay failed; the timer will try again")
        finally:
            self.provider.pool.putconn(conn)
        return published

    def purge(self, keep_days=7):
        """Delete published outbox rows and handled-event marks older than keep_days. Marks must
        outlive any redelivery (minutes); a week is generous."""
        with self.transaction() as tx:
            tx.execute("DELETE FROM outbox WHERE published_at < now() - make_interval(days => %s)",
                       (keep_days,))
            tx.execute("DELETE FROM processed_events "
                       "WHERE processed_at < now() - make_interval(days => %s)", (keep_days,))
