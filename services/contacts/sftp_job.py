"""One SFTP operation of a data source in a plain process of its own (no eventlet, no nameko):

    python -m services.contacts.sftp_job  < {"op": "list" | "fetch", "source_id", "org_id", "files"}

The contacts service starts it for `GET /data-sources/<id>/files` and `POST .../sync` and reads
one JSON answer from its stdout: {"ok": true, "result": ...} or {"ok": false, "error": {message,
errors, ...}}. paramiko's transport thread, under the service's eventlet hub, shared the hub's
file descriptors with the database connections of concurrent requests ("Second simultaneous read
on fileno"); here it shares nothing. `fetch` stores each chosen file in the upload store (one
transaction a file) and answers the upload ids. The service passes its database URL and SECRET_KEY
on stdin (never argv); the source row and its encrypted password are read from the database."""
import json
import logging
import sys

import paramiko

from services.common.errors import DomainError, Invalid, NotFound
from services.contacts import sources
from services.contacts.import_worker import Tx, connect


def run(request, config):
    conn = connect(request["dsn"], name="contacts-sftp")
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
        # The service's own configuration comes with the request (its SECRET_KEY decrypts the
        # stored password), so the job reads exactly what the service would.
        answer = {"ok": True, "result": run(request, {"SECRET_KEY": request["secret_key"]})}
    except DomainError as err:
        answer = {"ok": False, "error": dict(err.payload, kind=type(err).__name__)}
    except (OSError, EOFError, paramiko.SSHException) as err:
        # The server went away mid-transfer (paramiko raises these kinds too): say so plainly.
        answer = {"ok": False, "error": {"kind": "Invalid", "message": "the SFTP server failed",
                                         "errors": {"sftp": [f"{type(err).__name__}: {str(err)[:200]}"]}}}
    sys.stdout.write(json.dumps(answer, default=str))


if __name__ == "__main__":
    main()
