"""One SFTP operation of a data source in a plain process of its own (no eventlet, no nameko):

    python -m services.contacts.sftp_job  < {"op": "list" | "fetch", "source_id", "org_id", "files"}

The contacts service starts it for `GET /data-sources/<id>/files` and `POST .../sync` and reads
one JSON answer from its stdout: {"ok": true, "result": ...} or {"ok": false, "error": {message,
errors, ...}}. paramiko's transport thread, under the service's eventlet hub, shared the hub's
file descriptors with the database connections of concurrent requests ("Second simultaneous read
on fileno"); here it shares nothing. `fetch` stores each chosen file in the upload store (one
transaction a file) and answers the upload ids. The source row, its password and the database
come from this process's own configuration (the service's environment), never from argv."""
import json
import logging
import sys

from services.common.config import database_url, load_config
from services.common.errors import DomainError, Invalid, NotFound
from services.contacts import sources
from services.contacts.import_worker import Tx, connect


def run(request, config):
    conn = connect(database_url(config, "contacts"), name="contacts-sftp")
    try:
        tx = Tx(conn)
        ctx = {"org_id": request["org_id"]}
        row = tx.one("SELECT * FROM data_sources WHERE org_id = %s AND id = %s",
                     (request["org_id"], request["source_id"]))
        conn.commit()
        if row is None or row["kind"] != "sftp":
            raise NotFound("data source not found")
        session = sources.Sftp(row, config)
        try:
            if request["op"] == "list":
                return session.files()
            available = {f["name"] for f in session.files()}
            unknown = [f for f in request["files"] if f not in available]
            if unknown:
                raise Invalid("no such files", errors={"files": [f"{f} is not in the folder" for f in unknown]})
            uploads = []
            for name in request["files"]:
                try:
                    uploads.append(str(sources.store_upload(tx, ctx, name, session.chunks(name))))
                    conn.commit()
                except BaseException:
                    conn.rollback()
                    raise
            return uploads
        finally:
            session.close()
    finally:
        conn.close()


def main():
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        request = json.loads(sys.stdin.read())
        answer = {"ok": True, "result": run(request, load_config())}
    except DomainError as err:
        answer = {"ok": False, "error": dict(err.payload, kind=type(err).__name__)}
    sys.stdout.write(json.dumps(answer, default=str))


if __name__ == "__main__":
    main()
