"""The contacts service (nameko entrypoints; thin): contacts, imports, tags, segments, consent."""
import contextlib
import json
import logging
import sys
import time

import eventlet

from services.common.events import event_handler  # requeues on failure, see there
from nameko.dependency_providers import Config
from nameko.rpc import RpcProxy, rpc
from nameko.timer import timer

from services.common import audit
from services.common import rpc as rpc_call
from services.common import service as base  # a module, so `nameko run` finds only this class
from services.common.config import ROOT, database_url
from services.common.context import context
from services.common.db import Database
from services.common.errors import Invalid, NotFound
from services.common.schemas import is_uuid, load, uuid_or_404
from services.contacts import audience, consent, contacts, imports, ratelimit, sources
from services.contacts import schemas as s
from services.contacts import normalize

log = logging.getLogger(__name__)
FALLBACK = {"default_country": "US", "default_timezone": "UTC"}
SYNC_WAIT = 25  # seconds an in-request import waits for the worker (RPC timeout is 30)
SFTP_TIMEOUT = 20  # seconds an SFTP listing or fetch may take (the caller's RPC waits 30)


class ContactsService(base.ServiceBase):
    name = "contacts"
    db = Database("contacts")
    identity = RpcProxy("identity")
    config = Config()

    @timer(interval=600)
    def purge_uploads(self):
        """Uploads never imported (a refused file, an abandoned mapping) are deleted after
        imports.UPLOAD_TTL_HOURS."""
        while True:
            with self.db.transaction() as tx:
                if imports.purge_stale_uploads(tx) < 100:
                    return

    def _defaults(self, ctx, override=None):
        """The organization's default country and time zone (identity), with overrides."""
        out = dict(FALLBACK)
        try:
            org = rpc_call.call(self.identity, "get_organization", ctx, timeout=5)
            out.update({k: org[k] for k in ("default_country", "default_timezone") if org.get(k)})
        except Exception as err:  # identity down or not built: imports still work on defaults
            log.warning("organization defaults unavailable (%s): using %s", type(err).__name__, FALLBACK)
        for k, v in (override or {}).items():
            if v:
                out[k] = v
        if out.get("default_country"):
            out["default_country"] = normalize.country(out["default_country"]) or "US"
        return out

    # -- contacts ---------------------------------------------------------------------------
    @rpc
    def create_contact(self, ctx, data):
        ctx = context(ctx)
        data = load(s.ContactIn(), data)
        defaults = self._defaults(ctx)
        with self.db.transaction() as tx:
            row = contacts.create(tx, ctx, data, defaults)
            return contacts.serialize(row, defaults["default_timezone"])

    @rpc
    def get_contact(self, ctx, contact_id):
        ctx = context(ctx)
        contact_id = uuid_or_404(contact_id, "contact")
        defaults = self._defaults(ctx)
        with self.db.transaction() as tx:
            from services.contacts.store import ContactStore
            row = ContactStore(tx, ctx["org_id"]).get_contact(contact_id)
            out = contacts.serialize(row, defaults["default_timezone"])
            out["unsubscribe_history"] = consent.contact_history(tx, ctx, row)
            return out

    @rpc
    def update_contact(self, ctx, contact_id, data):
        ctx = context(ctx)
        contact_id = uuid_or_404(contact_id, "contact")
        data = load(s.ContactIn(), data, partial=True)
        defaults = self._defaults(ctx)
        with self.db.transaction() as tx:
            return contacts.serialize(contacts.update(tx, ctx, contact_id, data, defaults),
                                      defaults["default_timezone"])

    @rpc
    def delete_contact(self, ctx, contact_id):
        ctx = context(ctx)
        contact_id = uuid_or_404(contact_id, "contact")
        with self.db.transaction() as tx:
            contacts.delete(tx, ctx, contact_id)
        return None

    @rpc
    def list_contacts(self, ctx, query=None):
        ctx = context(ctx)
        q = load(s.ContactQuery(), query or {})
        defaults = self._defaults(ctx)
        with self.db.transaction() as tx:
            return contacts.list_contacts(tx, ctx, q, defaults)

    @rpc
    def count_contacts(self, ctx):
        """{total}: how many contacts the organization has (the dashboard's headline count)."""
        ctx = context(ctx)
        with self.db.transaction() as tx:
            from services.contacts.store import ContactStore
            return {"total": ContactStore(tx, ctx["org_id"]).count_contacts()}

    @rpc
    def set_unsubscribed(self, ctx, contact_id, data):
        ctx = context(ctx)
        contact_id = uuid_or_404(contact_id, "contact")
        data = load(s.Unsubscribe(), data)
        defaults = self._defaults(ctx)
        with self.db.transaction() as tx:
            return contacts.serialize(consent.set_contact(tx, ctx, contact_id, data),
                                      defaults["default_timezone"])

    # -- uploads and imports ------------------------------------------------------------------
    @rpc
    def begin_upload(self, ctx, data):
        ctx = context(ctx)
        data = load(s.UploadStart(), data)
        with self.db.transaction() as tx:
            return imports.begin_upload(tx, ctx, data)

    @rpc
    def append_upload(self, ctx, upload_id, seq, chunk):
        ctx = context(ctx)
        upload_id = uuid_or_404(upload_id, "upload")
        if not isinstance(seq, int) or not isinstance(chunk, str):
            raise Invalid("bad chunk", errors={"chunk": ["seq (int) and chunk (base64) required"]})
        with self.db.transaction() as tx:
            return imports.append_upload(tx, ctx, upload_id, seq, chunk)

    @rpc
    def discard_upload(self, ctx, upload_id):
        """Deletes an upload no import uses (the gateway's one-step import, refused): its bytes
        are not kept. -> whether it was deleted."""
        ctx = context(ctx)
        with self.db.transaction() as tx:
            return imports.discard_upload(tx, ctx, uuid_or_404(upload_id, "upload"))

    @rpc
    def describe_upload(self, ctx, upload_id):
        ctx = context(ctx)
        with self.db.transaction() as tx:
            return imports.describe_upload(tx, ctx, uuid_or_404(upload_id, "upload"))

    @rpc
    def import_contacts(self, ctx, data):
        """Sync mode runs the import in this call and returns its result; job mode queues it
        (`contacts.import_requested`) and returns the queued import to poll."""
        ctx = context(ctx)
        data = load(s.ImportStart(), data)
        defaults = self._defaults(ctx, {"default_country": data.get("default_country"),
                                        "default_timezone": data.get("default_timezone")})
        new_mapping = False
        if data.get("data_source_id"):
            with self.db.transaction() as tx:
                source = sources.get(tx, ctx, data["data_source_id"])
            new_mapping = bool(data.get("mapping"))
            if not new_mapping:
                data["mapping"] = sources.check_mapping(source)
        if not data.get("mapping"):
            raise Invalid("no mapping", errors={"mapping": ["give the column mapping"]})
        with self.db.transaction() as tx:
            import_id, upload = imports.create_import(tx, ctx, data, defaults)
            if new_mapping:
                # Saved on the source only once it fits the file (create_import checked it),
                # in the import's own transaction.
                from psycopg2.extras import Json
                before = sources.source_out(source)
                tx.execute("UPDATE data_sources SET mapping = %s WHERE org_id = %s AND id = %s",
                           (Json(data["mapping"]), ctx["org_id"], str(source["id"])))
                audit.record(tx, ctx, "data_source.updated", "data_source", source["id"],
                             _audited(before), _audited(sources.source_out(
                                 sources.get(tx, ctx, source["id"]))))
            if data["mode"] is None:
                data["mode"] = "sync" if upload["size"] <= imports.SYNC_LIMIT else "job"
            if data["mode"] == "job":
                tx.emit("import_requested", {"org_id": ctx["org_id"], "import_id": str(import_id),
                                             "defaults": defaults})
                return imports.import_out(tx, ctx, import_id)
        # Sync: the import worker runs it (its own process, see import_worker.py); this green
        # thread only waits for the outcome, so the hub stays free meanwhile.
        deadline = time.monotonic() + SYNC_WAIT
        while True:
            eventlet.sleep(0.05)
            with self.db.transaction() as tx:
                out = imports.import_out(tx, ctx, import_id)
            if out["status"] == "failed":
                # In the request a bad file is a 400, as before; nothing was written.
                raise Invalid(out["error"] or "the import failed",
                              errors={"file": [out["error"] or "the import failed"]})
            if out["status"] == "completed" or time.monotonic() > deadline:
                return out

    @event_handler("contacts", "import_requested")
    def run_import_job(self, payload):
        """The import worker runs queued imports (woken by NOTIFY when they are queued); a
        redelivered or relayed event only wakes it again."""
        with self.db.transaction() as tx:
            if tx.first_time(payload["event_id"], "contacts.run_import_job"):
                imports.wake_worker(tx)

    @rpc
    def get_import(self, ctx, import_id):
        ctx = context(ctx)
        with self.db.transaction() as tx:
            return imports.import_out(tx, ctx, uuid_or_404(import_id, "import"))

    @rpc
    def import_result_csv(self, ctx, import_id):
        ctx = context(ctx)
        with self.db.transaction() as tx:
            return imports.result_csv(tx, ctx, uuid_or_404(import_id, "import"))

    @rpc
    def list_imports(self, ctx, query=None):
        ctx = context(ctx)
        with self.db.transaction() as tx:
            return imports.list_imports(tx, ctx, (query or {}).get("data_source_id"))

    # -- data sources ---------------------------------------------------------------------------
    @rpc
    def create_data_source(self, ctx, data):
        ctx = context(ctx)
        data = load(s.DataSourceIn(), data)
        with self.db.transaction() as tx:
            out = sources.create(tx, ctx, data, self.config)
            audit.record(tx, ctx, "data_source.created", "data_source", out["id"], None, _audited(out))
            return out

    @rpc
    def list_data_sources(self, ctx):
        ctx = context(ctx)
        with self.db.transaction() as tx:
            return sources.list_sources(tx, ctx)

    @rpc
    def get_data_source(self, ctx, source_id):
        ctx = context(ctx)
        with self.db.transaction() as tx:
            row = sources.get(tx, ctx, uuid_or_404(source_id, "data source"))
            return dict(sources.source_out(row), imports=imports.list_imports(tx, ctx, row["id"]))

    @rpc
    def update_data_source(self, ctx, source_id, data):
        ctx = context(ctx)
        data = load(s.DataSourcePatch(), data)
        from psycopg2.extras import Json
        with self.db.transaction() as tx:
            row = sources.get(tx, ctx, uuid_or_404(source_id, "data source"))
            before = sources.source_out(row)
            if "name" in data:
                tx.execute("UPDATE data_sources SET name = %s WHERE id = %s", (data["name"], row["id"]))
            if "mapping" in data:
                tx.execute("UPDATE data_sources SET mapping = %s WHERE id = %s", (Json(data["mapping"]), row["id"]))
            if "sftp" in data:
                sources.pin_host_key(tx, ctx, row, data["sftp"]["host_key_fingerprint"])
            after = sources.source_out(sources.get(tx, ctx, row["id"]))
            audit.record(tx, ctx, "data_source.updated", "data_source", row["id"],
                         _audited(before), _audited(after))
            return after

    @rpc
    def delete_data_source(self, ctx, source_id):
        ctx = context(ctx)
        with self.db.transaction() as tx:
            before = sources.source_out(sources.get(tx, ctx, uuid_or_404(source_id, "data source")))
            sources.delete(tx, ctx, uuid_or_404(source_id, "data source"))
            audit.record(tx, ctx, "data_source.deleted", "data_source", before["id"],
                         _audited(before), None)

    @rpc
    def list_source_files(self, ctx, source_id):
        """The importable files in an SFTP source's folder."""
        ctx = context(ctx)
        with self.db.transaction() as tx:
            row = sources.get(tx, ctx, uuid_or_404(source_id, "data source"))
        if row["kind"] != "sftp":
            raise Invalid("not an SFTP source", errors={"kind": ["only SFTP sources list files"]})
        with self._sync_failures(ctx, row):
            files = self._sftp(ctx, row, "list")
        return {"data_source_id": str(row["id"]), "files": files}

    def _sftp(self, ctx, row, op, files=None):
        """Runs one SFTP operation in its own plain process (services/contacts/sftp_job.py):
        paramiko under this eventlet hub disturbed concurrent requests' database sockets. The
        green subprocess leaves the hub free while it runs; its refusal comes back as the same
        error class (Invalid, NotFound)."""
        from eventlet.green import subprocess
        request = json.dumps({"op": op, "source_id": str(row["id"]), "org_id": ctx["org_id"],
                              "files": files or [], "dsn": database_url(self.config, "contacts"),
                              "secret_key": self.config.get("SECRET_KEY")})
        proc = subprocess.Popen([sys.executable, "-m", "services.contacts.sftp_job"], cwd=ROOT,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            with eventlet.Timeout(SFTP_TIMEOUT):
                out, err = proc.communicate(request.encode())
        except eventlet.Timeout:
            proc.kill()
            proc.wait()
            raise Invalid("the SFTP server did not answer in time", errors={"sftp": [
                f"no answer within {SFTP_TIMEOUT} s"]})
        try:
            answer = json.loads(out)
        except ValueError:
            # A crash: its traceback is for the log, not for the client (it may name hosts).
            log.error("sftp job for data source %s failed:\n%s", row["id"],
                      (err or b"").decode("utf-8", "replace")[-4000:])
            raise Invalid("the SFTP operation failed", errors={"sftp": [
                "an internal error; the contacts service log has the details"]})
        if answer["ok"]:
            return answer["result"]
        error = answer["error"]
        kind = NotFound if error.pop("kind", None) == "NotFound" else Invalid
        error.pop("error", None)
        raise kind(error.pop("message", "the SFTP operation failed"), **error)

    @contextlib.contextmanager
    def _sync_failures(self, ctx, row):
        """A source that cannot be read (sign-in, host key, folder) says so on the source too:
        last_sync_at and last_result {status: failed, error} record the attempt."""
        try:
            yield
        except Invalid as err:
            with self.db.transaction() as tx:
                imports.record_sync(tx, row["id"], {"status": "failed", "error": err.summary()})
            raise

    @rpc
    def sync_data_source(self, ctx, source_id, data):
        """Imports the chosen files of an SFTP source, each as a job (poll the imports)."""
        ctx = context(ctx)
        data = load(s.SyncIn(), data)
        defaults = self._defaults(ctx)
        with self.db.transaction() as tx:
            row = sources.get(tx, ctx, uuid_or_404(source_id, "data source"))
            mapping = sources.check_mapping(row)
        if row["kind"] != "sftp":
            raise Invalid("not an SFTP source", errors={"kind": ["upload files to a file source"]})
        with self._sync_failures(ctx, row):
            uploads = self._sftp(ctx, row, "fetch", data["files"])
        # Every chosen file is queued, or none is (a file the mapping does not fit refuses the
        # sync; its fetched bytes are purged with the other unused uploads).
        with self._sync_failures(ctx, row), self.db.transaction() as tx:
            queued = []
            for upload_id in uploads:
                import_id, _ = imports.create_import(tx, ctx, {
                    "upload_id": upload_id, "mapping": mapping, "data_source_id": row["id"]},
                    defaults)
                tx.emit("import_requested", {"org_id": ctx["org_id"], "import_id": str(import_id),
                                             "defaults": defaults})
                queued.append(imports.import_out(tx, ctx, import_id))
        return {"data_source_id": str(row["id"]), "imports": queued}

    # -- tags -----------------------------------------------------------------------------------
    @rpc
    def create_tag(self, ctx, data):
        ctx = context(ctx)
        data = load(s.TagIn(), data)
        with self.db.transaction() as tx:
            return audience.create_tag(tx, ctx, data)

    @rpc
    def list_tags(self, ctx, query=None):
        ctx = context(ctx)
        q = query or {}
        with self.db.transaction() as tx:
            return audience.list_tags(tx, ctx, q.get("kind"), q.get("active"), q.get("q"))

    @rpc
    def update_tag(self, ctx, tag_id, data):
        ctx = context(ctx)
        data = load(s.TagPatch(), data)
        with self.db.transaction() as tx:
            return audience.update_tag(tx, ctx, uuid_or_404(tag_id, "tag"), data)

    @rpc
    def delete_tag(self, ctx, tag_id):
        ctx = context(ctx)
        with self.db.transaction() as tx:
            audience.delete_tag(tx, ctx, uuid_or_404(tag_id, "tag"))

    @rpc
    def tag_contact(self, ctx, contact_id, data):
        ctx = context(ctx)
        data = load(s.Tagging(), data)
        defaults = self._defaults(ctx)
        with self.db.transaction() as tx:
            cid = uuid_or_404(contact_id, "contact")
            audience.tag_contact(tx, ctx, cid, data)
            from services.contacts.store import ContactStore
            return contacts.serialize(ContactStore(tx, ctx["org_id"]).get_contact(cid),
                                      defaults["default_timezone"])

    @rpc
    def bulk_tag(self, ctx, data):
        ctx = context(ctx)
        data = load(s.BulkTagging(), data)
        if data.get("contact_ids") is None:
            # The filter is the contact list's query: the same schema checks it, and an unknown
            # key is refused (ignoring it would tag every contact).
            try:
                loaded = load(s.ContactQuery(), data.get("filter") or {})
            except Invalid as err:
                raise Invalid("invalid filter", errors={f"filter.{k}": v for k, v in err.errors.items()})
            # What selects: paging keys and empty values do not.
            data["filter"] = {k: v for k, v in loaded.items()
                              if k not in ("after", "limit") and v is not None
                              and not (isinstance(v, str) and not v.strip())}
            if not data["filter"]:
                raise Invalid("say which contacts", errors={"filter": [
                    "give contact_ids or a filter that selects (an empty one would select every"
                    " contact)"]})
        with self.db.transaction() as tx:
            return audience.bulk_tag(tx, ctx, data)

    # -- segments -------------------------------------------------------------------------------
    @rpc
    def create_segment(self, ctx, data):
        ctx = context(ctx)
        data = load(s.SegmentIn(), data)
        with self.db.transaction() as tx:
            return audience.create_segment(tx, ctx, data)

    @rpc
    def list_segments(self, ctx):
        ctx = context(ctx)
        with self.db.transaction() as tx:
            return audience.list_segments(tx, ctx)

    @rpc
    def get_segment(self, ctx, segment_id):
        ctx = context(ctx)
        with self.db.transaction() as tx:
            return audience.segment_out(audience.get_segment(tx, ctx, uuid_or_404(segment_id, "segment")))

    @rpc
    def update_segment(self, ctx, segment_id, data):
        ctx = context(ctx)
        data = load(s.SegmentPatch(), data)
        with self.db.transaction() as tx:
            return audience.update_segment(tx, ctx, uuid_or_404(segment_id, "segment"), data)

    @rpc
    def delete_segment(self, ctx, segment_id):
        ctx = context(ctx)
        with self.db.transaction() as tx:
            audience.delete_segment(tx, ctx, uuid_or_404(segment_id, "segment"))

    @rpc
    def segment_exists(self, ctx, segment_id):
        ctx = context(ctx)
        try:
            sid = uuid_or_404(segment_id, "segment")
        except Invalid:
            return False
        with self.db.transaction() as tx:
            return tx.one("SELECT 1 FROM segments WHERE org_id = %s AND id = %s",
                          (ctx["org_id"], sid)) is not None

    @rpc
    def count_segment(self, ctx, segment_id):
        ctx = context(ctx)
        with self.db.transaction() as tx:
            return audience.count_segment(tx, ctx, uuid_or_404(segment_id, "segment"))

    @rpc
    def preview_segment(self, ctx, segment_id, limit=20):
        ctx = context(ctx)
        limit = max(1, min(int(limit or 20), 100))
        defaults = self._defaults(ctx)
        with self.db.transaction() as tx:
            return audience.preview_segment(tx, ctx, uuid_or_404(segment_id, "segment"), limit, defaults)

    @rpc
    def explain_membership(self, ctx, segment_id, contact_id):
        ctx = context(ctx)
        with self.db.transaction() as tx:
            return audience.why(tx, ctx, uuid_or_404(segment_id, "segment"), uuid_or_404(contact_id, "contact"))

    @rpc
    def resolve_segment(self, ctx, data):
        ctx = context(ctx)
        q = load(s.Resolve(), data)
        defaults = self._defaults(ctx)
        with self.db.transaction() as tx:
            return audience.resolve(tx, ctx, q, defaults["default_timezone"])

    @rpc
    def reachable(self, ctx, data):
        ctx = context(ctx)
        q = load(s.Reachable(), data)
        with self.db.transaction() as tx:
            return audience.reachable(tx, ctx, q["channel"], q["identifiers"])

    @rpc
    def find_contact(self, ctx, data):
        ctx = context(ctx)
        q = load(s.FindContact(), data)
        defaults = self._defaults(ctx)
        with self.db.transaction() as tx:
            return audience.find_contact(tx, ctx, q, defaults)

    # -- unsubscribes -----------------------------------------------------------------------------
    @rpc
    def change_unsubscribes(self, ctx, data):
        ctx = context(ctx)
        data = load(s.UnsubscribeBatch(), data)
        with self.db.transaction() as tx:
            return consent.change_batch(tx, ctx, data)

    @rpc
    def list_unsubscribes(self, ctx, query):
        ctx = context(ctx)
        q = load(s.UnsubscribeList(), query)
        with self.db.transaction() as tx:
            return consent.list_changes(tx, ctx, q)

    @rpc
    def unsubscribe_history(self, ctx, channel, identifier):
        ctx = context(ctx)
        if channel not in s.CHANNELS:
            raise Invalid("unknown channel", errors={"channel": ["email, sms or phone"]})
        ident, problem = consent.normalise_identifier(channel, identifier)
        if problem:
            raise Invalid(problem, errors={"identifier": [problem]})
        with self.db.transaction() as tx:
            return consent.history(tx, ctx, channel, ident)

    @rpc
    def create_unsubscribe_group(self, ctx, data):
        ctx = context(ctx)
        data = load(s.GroupIn(), data)
        with self.db.transaction() as tx:
            out = consent.create_group(tx, ctx, data)
            audit.record(tx, ctx, "unsubscribe_group.created", "unsubscribe_group", out["id"], None, out)
            return out

    @rpc
    def list_unsubscribe_groups(self, ctx):
        ctx = context(ctx)
        with self.db.transaction() as tx:
            return consent.list_groups(tx, [ctx["org_id"]])

    @rpc
    def unsubscribe_group_owner(self, group_id, org_ids):
        """Which of `org_ids` (the organizations an API credential reaches) owns the group, or
        None: one lookup, for the Unsubscribe API's group_id targeting (no ctx: the answer is
        bounded by the credential's organizations)."""
        if not is_uuid(group_id) or not isinstance(org_ids, list) or not all(map(is_uuid, org_ids)):
            return None
        with self.db.transaction() as tx:
            row = tx.one("SELECT org_id FROM unsubscribe_groups WHERE id = %s AND org_id = ANY(%s::uuid[])",
                         (str(group_id), [str(o) for o in org_ids]))
        return str(row["org_id"]) if row else None

    @rpc
    def count_api_request(self, client_id):
        """The Unsubscribe API's limit, shared by every gateway process (no ctx: it concerns an
        API client, no organization's data): counts one request, RateLimited past 60 a minute."""
        if not isinstance(client_id, str) or not client_id or len(client_id) > 200:
            raise Invalid("bad client id", errors={"client_id": ["required"]})
        with self.db.transaction() as tx:
            return ratelimit.count_request(tx, client_id)

    @event_handler("messaging", "opt_out_requested")
    def on_opt_out_requested(self, payload):
        try:
            payload = load(s.OptOutEvent(), payload)
        except Invalid:
            log.warning("ignoring malformed opt_out_requested event")
            return
        with self.db.transaction() as tx:
            if not tx.first_time(str(payload["event_id"]), "contacts.on_opt_out_requested"):
                return
            consent.opt_out(tx, payload)


    @event_handler("messaging", "email_bounced")
    def on_email_bounced(self, payload):
        """A hard bounce marks the address undeliverable for e-mail; soft bounces don't block."""
        try:
            payload = load(s.BounceEvent(), payload)
        except Invalid:
            log.warning("ignoring malformed email_bounced event")
            return
        with self.db.transaction() as tx:
            if not tx.first_time(str(payload["event_id"]), "contacts.on_email_bounced"):
                return
            consent.bounced(tx, payload)




def _audited(source):
    """A data source as the audit log keeps it: what was configured, not its sync history."""
    return {k: v for k, v in source.items() if k not in ("imports", "last_sync_at", "last_result")}
