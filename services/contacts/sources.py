"""Data sources: a file source keeps its column mapping and the history of its imports; an SFTP
source lists the CSV/XLSX files in a remote folder and imports the chosen ones (each file is
streamed into the upload store, then imported as a job). Sources show the last sync time and
result. The SFTP password is stored encrypted (Fernet keyed from SECRET_KEY) and never returned."""
import base64
import hashlib
import posixpath
import stat

from psycopg2.extras import Json

from services.common import crypto

from services.common.errors import Invalid, NotFound
from services.contacts import importer, reader
from services.contacts.store import new_id

CHUNK = 1024 * 1024
IMPORTABLE = (".csv", ".txt", ".xlsx")


def source_out(row):
    settings = dict(row["settings"] or {})
    settings.pop("password_encrypted", None)
    if row["kind"] == "sftp":
        settings["password_set"] = bool((row["settings"] or {}).get("password_encrypted"))
    return {"id": str(row["id"]), "kind": row["kind"], "name": row["name"], "mapping": row["mapping"],
            "settings": settings,
            "last_sync_at": row["last_sync_at"].isoformat() if row["last_sync_at"] else None,
            "last_result": row["last_result"], "created_at": row["created_at"].isoformat()}


def create(tx, ctx, data, config):
    settings = {}
    if data["kind"] == "sftp":
        sftp = data.get("sftp") or {}
        missing = [k for k in ("host", "username") if not sftp.get(k)]
        if missing:
            raise Invalid("incomplete SFTP settings", errors={f"sftp.{k}": ["required"] for k in missing})
        settings = {"host": sftp["host"], "port": int(sftp.get("port") or 22),
                    "username": sftp["username"], "path": sftp.get("path") or ".",
                    "host_key_fingerprint": _fingerprint_form(sftp.get("host_key_fingerprint"))}
        if sftp.get("password"):
            settings["password_encrypted"] = crypto.encrypt(sftp["password"], config)
    row = tx.one("INSERT INTO data_sources (id, org_id, kind, name, mapping, settings)"
                 " VALUES (%s, %s, %s, %s, %s, %s) RETURNING *",
                 (new_id(), ctx["org_id"], data["kind"], data["name"], Json(data.get("mapping") or {}),
                  Json(settings)))
    return source_out(row)


def _fingerprint_form(value):
    """OpenSSH prints SHA256 fingerprints without base64 padding; accept it either way."""
    return value.rstrip("=") if value else None


def pin_host_key(tx, ctx, row, fingerprint):
    """Records (or clears, with None) the SFTP server host key fingerprint the source trusts."""
    if row["kind"] != "sftp":
        raise Invalid("not an SFTP source", errors={"sftp": ["only SFTP sources have a host key"]})
    settings = dict(row["settings"] or {}, host_key_fingerprint=_fingerprint_form(fingerprint))
    tx.execute("UPDATE data_sources SET settings = %s WHERE id = %s", (Json(settings), row["id"]))


def fingerprint(key):
    """OpenSSH's form of a host key fingerprint: SHA256:<base64 without padding>."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def get(tx, ctx, source_id):
    row = tx.one("SELECT * FROM data_sources WHERE org_id = %s AND id = %s", (ctx["org_id"], str(source_id)))
    if row is None:
        raise NotFound("data source not found")
    return row


def list_sources(tx, ctx):
    return [source_out(r) for r in tx.all("SELECT * FROM data_sources WHERE org_id = %s ORDER BY created_at, id",
                                          (ctx["org_id"],))]


def delete(tx, ctx, source_id):
    if tx.one("DELETE FROM data_sources WHERE org_id = %s AND id = %s RETURNING id",
              (ctx["org_id"], str(source_id))) is None:
        raise NotFound("data source not found")


class Sftp:
    """A short SFTP session (paramiko) to one source's server."""

    def __init__(self, row, config, timeout=15):
        import paramiko

        s = row["settings"]
        password = None
        if s.get("password_encrypted"):
            try:
                password = crypto.decrypt(s["password_encrypted"], config)
            except crypto.CannotDecrypt:
                raise Invalid("the stored SFTP password cannot be read with the current SECRET_KEY",
                              errors={"sftp.password": ["enter the password again"]})
        self.path = s.get("path") or "."
        self.transport = paramiko.Transport((s["host"], int(s.get("port") or 22)))
        self.transport.banner_timeout = timeout
        try:
            self.transport.start_client(timeout=timeout)
            # The host key is checked before the password is sent: a server we have not
            # confirmed never sees it.
            key = self.transport.get_remote_server_key()
            presented = fingerprint(key)
            expected = s.get("host_key_fingerprint")
            if not expected:
                raise Invalid(
                    "the SFTP server's host key is not confirmed yet",
                    errors={"sftp.host_key_fingerprint": [
                        f"the server presented the {key.get_name()} key {presented}; if that is "
                        "your server's key, save this fingerprint on the data source"]},
                    presented_fingerprint=presented)
            if presented != expected:
                raise Invalid(
                    "the SFTP server's host key does not match the confirmed one",
                    errors={"sftp.host_key_fingerprint": [
                        f"expected {expected}, the server presented the {key.get_name()} key "
                        f"{presented}: the server was reinstalled, or someone is in between; "
                        "check with its administrator before saving the new fingerprint"]},
                    presented_fingerprint=presented)
            if password is not None:
                self.transport.auth_password(s["username"], password)
            else:
                self.transport.auth_none(s["username"])
        except (paramiko.SSHException, OSError, Invalid) as err:
            self.transport.close()
            self.transport.join(5)
            if isinstance(err, Invalid):
                raise
            raise Invalid("cannot sign in to the SFTP server", errors={"sftp": [type(err).__name__ + ": " + str(err)[:200]]})
        self.client = paramiko.SFTPClient.from_transport(self.transport)

    def files(self):
        try:
            entries = self.client.listdir_attr(self.path)
        except OSError as err:  # no such folder, no permission (paramiko raises IOError kinds)
            raise Invalid("cannot read the SFTP folder", errors={"sftp.path": [
                f"{self.path!r}: {err.strerror or type(err).__name__}"]})
        out = []
        for entry in entries:
            if stat.S_ISREG(entry.st_mode or 0) and entry.filename.lower().endswith(IMPORTABLE):
                out.append({"name": entry.filename, "size": entry.st_size,
                            "modified_at": entry.st_mtime})
        return sorted(out, key=lambda f: f["name"])

    def chunks(self, name):
        if "/" in name or name in ("", ".", ".."):
            raise Invalid("bad file name", errors={"files": [f"{name!r} is not a file of this folder"]})
        try:
            with self.client.open(posixpath.join(self.path, name), "rb") as f:
                while True:
                    data = f.read(CHUNK)
                    if not data:
                        return
                    yield data
        except OSError as err:
            raise Invalid("cannot read the SFTP file", errors={"files": [
                f"{name}: {err.strerror or type(err).__name__}"]})

    def close(self):
        self.client.close()
        self.transport.close()
        # The transport's reader thread may still be parked on the socket for up to its 0.1 s
        # timeout; let it finish. (Sessions run in services/contacts/sftp_job.py, a plain
        # process: under the service's eventlet hub that thread disturbed other sockets.)
        self.transport.join(5)


def store_upload(tx, ctx, name, chunks):
    """Writes a file's chunks into the upload store; -> upload row id. Invalid if not importable."""
    upload_id = new_id()
    size, seq = 0, 0
    for data in chunks:
        if seq == 0:
            kind = reader.sniff_kind(data)
            tx.execute("INSERT INTO uploads (id, org_id, filename, kind) VALUES (%s, %s, %s, %s)",
                       (upload_id, ctx["org_id"], name, kind))
        tx.execute("INSERT INTO upload_chunks (upload_id, seq, data) VALUES (%s, %s, %s)",
                   (upload_id, seq, data))
        size += len(data)
        seq += 1
    if seq == 0:
        raise Invalid("the file is empty", errors={"file": [f"{name} is empty"]})
    tx.execute("UPDATE uploads SET size = %s, chunks = %s WHERE id = %s", (size, seq, upload_id))
    return upload_id


def check_mapping(row):
    if not row["mapping"] or not (row["mapping"].get("email") or row["mapping"].get("phone")):
        raise Invalid("the data source has no column mapping",
                      errors={"mapping": ["save a mapping with an e-mail or phone column first"]})
    return row["mapping"]


def suggested(tx, ctx, upload_id):
    from services.contacts import imports
    table = reader.open_table(imports.chunks(tx, upload_id))
    table.close()
    return {"columns": table.columns, "suggested_mapping": importer.suggest_mapping(table.columns)}
