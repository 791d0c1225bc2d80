"""Applies each service's migrations (yoyo) to its own schema: common plumbing first, then the
service's numbered SQL files. `python -m services.common.migrate [service ...]`."""
import os
import sys

import psycopg2
from yoyo import get_backend, read_migrations

from services.common.config import ROOT, database_url, load_config

SERVICES = ("identity", "contacts", "campaigns", "messaging", "reporting")


def ensure_database(dsn):
    """Create the database named in dsn if it does not exist yet."""
    from psycopg2.extensions import parse_dsn, make_dsn

    params = parse_dsn(dsn)
    name = params.get("dbname")
    admin = make_dsn(dsn, dbname="postgres")
    conn = psycopg2.connect(admin)
    conn.autocommit = True
    try:
        cur = conn.cursor()
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if not cur.fetchone():
            cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()


def migrate(service, config=None):
    config = config or load_config()
    dsn = database_url(config, service)
    ensure_database(dsn)
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    conn.cursor().execute(f"CREATE SCHEMA IF NOT EXISTS {service}")
    conn.close()
    sep = "&" if "?" in dsn else "?"
    backend = get_backend(f"{dsn}{sep}schema={service}")
    migrations = read_migrations(
        os.path.join(ROOT, "services", "common", "migrations"),
        os.path.join(ROOT, "services", service, "migrations"),
    )
    with backend.lock():
        backend.apply_migrations(backend.to_apply(migrations))


def main(argv):
    config = load_config()
    for service in argv or SERVICES:
        migrate(service, config)
        print(f"migrated {service}")


if __name__ == "__main__":
    main(sys.argv[1:])
