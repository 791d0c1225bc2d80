"""Contacts, imports, tags, segments and consent for signed-in users; and the Unsubscribe API
(spec 3.11) for machine clients holding an OAuth access token from `POST /oauth/token`.

Uploads reach the contacts service in base64 chunks over RPC (JSON over AMQP), so the gateway and
the service may run on different hosts; small files import inside the request, bigger ones as a
job whose progress `GET /contacts/imports/<id>` reports."""
import base64
import collections
import hashlib
import hmac
import json

from flask import Blueprint, Response, current_app, g, request
from marshmallow import ValidationError, Schema, fields, validate

from gateway.api import _json_body, _load, endpoint, unstorable
from gateway.errors import ApiError
from gateway.rpc import rpc
from services.common import errors as e
from services.contacts import schemas as s
from services.contacts.consent import MAX_BATCH

bp = Blueprint("contacts", __name__)
V1 = "/api/v1"
CHUNK = 1024 * 1024
UPLOAD_WINDOW = 3  # chunks sent and not yet answered
CHANNELS = ("email", "sms", "phone")


# --- shapes for the OpenAPI document -----------------------------------------------------------

class ContactOut(Schema):
    id = fields.String()
    name = fields.String(allow_none=True)
    first_name = fields.String(allow_none=True)
    last_name = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    phone_extension = fields.String(allow_none=True)
    timezone = fields.String(allow_none=True)
    effective_timezone = fields.String(allow_none=True)
    active = fields.Boolean()
    custom = fields.Dict()
    tags = fields.List(fields.String())
    unsubscribed = fields.Dict(keys=fields.String(), values=fields.Boolean())
    reachable = fields.Dict(keys=fields.String(), values=fields.Boolean())
    email_undeliverable = fields.Boolean()
    email_undeliverable_at = fields.String(allow_none=True)
    email_undeliverable_diagnostic = fields.String(allow_none=True)
    created_at = fields.String()
    updated_at = fields.String()


class ContactPage(Schema):
    contacts = fields.List(fields.Nested(ContactOut))
    next_cursor = fields.String(allow_none=True)
    summary = fields.Dict()


class ImportOut(Schema):
    id = fields.String()
    status = fields.String()
    filename = fields.String(allow_none=True)
    rows_total = fields.Integer(allow_none=True)
    rows_done = fields.Integer()
    counts = fields.Dict()
    error = fields.String(allow_none=True)
    attempts = fields.Integer()
    created = fields.List(fields.Dict())
    rejected = fields.List(fields.Dict())
    merged = fields.List(fields.Dict())
    updated = fields.List(fields.Dict())
    unchanged = fields.List(fields.Dict())
    warnings = fields.List(fields.Dict())
    details_truncated = fields.Boolean()
    summary = fields.Dict()
    mapping = fields.Dict()
    data_source_id = fields.String(allow_none=True)
    created_at = fields.String()
    finished_at = fields.String(allow_none=True)


class UploadOut(Schema):
    upload_id = fields.String()
    kind = fields.String()
    columns = fields.List(fields.String())
    delimiter = fields.String(allow_none=True)
    encoding = fields.String(allow_none=True)
    size = fields.Integer()
    suggested_mapping = fields.Dict()


# Multipart request bodies (documented in the OpenAPI document; the views read request.files).
UPLOAD_FORM = {"type": "object", "required": ["file"], "properties": {
    "file": {"type": "string", "format": "binary", "description": "CSV or XLSX, at most 60 MB"}}}
IMPORT_FORM = {"type": "object", "required": ["file", "mapping"], "properties": {
    "file": {"type": "string", "format": "binary", "description": "CSV or XLSX, at most 60 MB"},
    "mapping": {"type": "string", "description": "the column mapping, as JSON text"},
    "mode": {"type": "string", "enum": ["sync", "job"],
             "description": "sync: import in the request; job: queue it (202). Also a query"
                            " parameter. Default: files up to 2 MB sync, bigger ones job"}}}


class TagOut(Schema):
    id = fields.String()
    title = fields.String()
    kind = fields.String()
    color = fields.String(allow_none=True)
    active = fields.Boolean()
    usage = fields.Integer()


class SegmentOut(Schema):
    id = fields.String()
    name = fields.String()
    description = fields.String(allow_none=True)
    rules = fields.Dict()


class ImportJson(s.Base):
    upload_id = fields.UUID(required=True)
    mapping = fields.Dict(required=True)
    mode = fields.String(load_default=None, validate=validate.OneOf(("sync", "job")))
    data_source_id = fields.UUID(load_default=None, allow_none=True)


class TagInApi(s.TagIn):
    colour = fields.String(load_default=None, allow_none=True)   # British spelling accepted


class SegmentInApi(s.Base):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(load_default=None, allow_none=True)
    match = fields.String(load_default=None, validate=validate.OneOf(("all", "any")))
    rules = fields.Raw(required=True)


class SegmentPatchApi(s.Base):
    name = fields.String(validate=validate.Length(min=1, max=200))
    description = fields.String(allow_none=True)
    match = fields.String(validate=validate.OneOf(("all", "any")))
    rules = fields.Raw()


class PreviewQuery(s.Base):
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


class TagQuery(s.Base):
    kind = fields.String(load_default=None, validate=validate.OneOf(("contact", "communication")))
    active = fields.Boolean(load_default=None, allow_none=True)
    q = fields.String(load_default=None)


def _rules(body):
    """Rules as {match, rules: [...]}: a list with a top-level match is accepted too."""
    rules = body.get("rules")
    if isinstance(rules, list):
        return {"match": body.get("match") or "all", "rules": rules}
    if isinstance(rules, dict):
        if body.get("match"):
            rules = dict(rules, match=body["match"])
        return rules
    raise ApiError(400, "invalid", "invalid body", errors={"rules": ["a list of rules or {match, rules}"]})


# --- contacts ----------------------------------------------------------------------------------

@bp.get(f"{V1}/contacts")
@endpoint("read", query=s.ContactQuery(), response=ContactPage(), tags=["contacts"])
def list_contacts(query):
    """Contacts with filters (q, tag_id, segment_id, active, unsubscribed, has_email, has_phone,
    created range), keyset pagination (`after` = the previous page's next_cursor) and counts."""
    return rpc.contacts.list_contacts(g.ctx, _jsonable(query))


@bp.post(f"{V1}/contacts")
@endpoint("operate", body=s.ContactIn(), response=ContactOut(), status=201, tags=["contacts"])
def create_contact(body):
    """Create one contact (e-mail or phone required)."""
    return rpc.contacts.create_contact(g.ctx, _jsonable(body))


@bp.get(f"{V1}/contacts/<contact_id>")
@endpoint("read", response=ContactOut(), tags=["contacts"])
def get_contact(contact_id):
    """One contact with tags, consent per channel and its unsubscribe history."""
    return rpc.contacts.get_contact(g.ctx, contact_id)


@bp.patch(f"{V1}/contacts/<contact_id>")
@endpoint("operate", body=s.ContactIn(partial=True), response=ContactOut(), tags=["contacts"])
def update_contact(contact_id, body):
    """Change fields; `active: false` deactivates."""
    return rpc.contacts.update_contact(g.ctx, contact_id, _jsonable(body))


@bp.delete(f"{V1}/contacts/<contact_id>")
@endpoint("operate", status=204, tags=["contacts"])
def delete_contact(contact_id):
    """Delete a contact."""
    rpc.contacts.delete_contact(g.ctx, contact_id)
    return None, 204


@bp.post(f"{V1}/contacts/<contact_id>/tags")
@endpoint("operate", body=s.Tagging(), response=ContactOut(), tags=["contacts"])
def tag_contact(contact_id, body):
    """Tag (or with `remove: true` untag) one contact by tag ids or titles."""
    return rpc.contacts.tag_contact(g.ctx, contact_id, _jsonable(body))


@bp.post(f"{V1}/contacts/<contact_id>/unsubscribes")
@endpoint("operate", body=s.Unsubscribe(), response=ContactOut(), tags=["contacts"])
def set_unsubscribed(contact_id, body):
    """Record an unsubscribe (or re-subscribe) for one channel; its source is always admin."""
    return rpc.contacts.set_unsubscribed(g.ctx, contact_id, body)


@bp.post(f"{V1}/contacts/bulk-tags")
@endpoint("operate", body=s.BulkTagging(), tags=["contacts"])
def bulk_tag(body):
    """Tag or untag every contact matching `filter` (the list filters) or `contact_ids`."""
    return rpc.contacts.bulk_tag(g.ctx, _jsonable(body))


# --- uploads and imports -----------------------------------------------------------------------

def _send_upload():
    """Streams the multipart `file` to the contacts service in chunks; -> (upload, size)."""
    upload = request.files.get("file")
    if upload is None:
        raise ApiError(400, "invalid", "send the file as multipart field `file`",
                       errors={"file": ["missing"]})
    if len(request.files.getlist("file")) > 1:
        raise ApiError(400, "invalid", "send one file a request",
                       errors={"file": ["sent more than once: one file a request"]})
    stream = upload.stream
    first = stream.read(CHUNK)
    following = stream.read(CHUNK)  # none: the first chunk is the whole file (`last`)
    answer = rpc.contacts.begin_upload(g.ctx, {"filename": upload.filename or None,
                                               "chunk": base64.b64encode(first).decode(),
                                               "last": not following})
    size, seq = len(first), 1
    # A few chunks in flight at once: this process reads and encodes the next while the
    # contacts service decodes and stores the last ones.
    in_flight = collections.deque()
    try:
        while True:
            chunk, following = following or stream.read(CHUNK), b""
            if not chunk:
                break
            in_flight.append(rpc.contacts.append_upload.call_async(
                g.ctx, answer["upload_id"], seq, base64.b64encode(chunk).decode()))
            size += len(chunk)
            seq += 1
            if len(in_flight) >= UPLOAD_WINDOW:
                in_flight.popleft().result()
        while in_flight:
            in_flight.popleft().result()
    except Exception:
        if in_flight:
            # A refused or timed-out chunk: the others' replies are not waited for (each could
            # take a whole RPC timeout); this thread's proxy starts afresh. The upload's id was
            # never answered; what was stored is purged with unused uploads.
            rpc.reset()
        raise
    return answer, size


@bp.post(f"{V1}/contacts/uploads")
@endpoint("operate", response=UploadOut(), status=201, tags=["imports"], form=UPLOAD_FORM)
def upload_file():
    """Upload a CSV or XLSX file; answers the detected columns and a suggested mapping."""
    answer, size = _send_upload()
    if answer["kind"] != "csv":
        answer = rpc.contacts.describe_upload(g.ctx, answer["upload_id"])
    return dict(answer, size=size), 201


def _form_mapping():
    """The multipart form's `mapping` (JSON), checked before any byte of the file is stored:
    storable text, known keys, values of the right kinds (400 naming them); None when absent."""
    raw = request.form.get("mapping")
    if not raw:
        return None
    try:
        mapping = json.loads(raw)
    except ValueError:
        raise ApiError(400, "invalid", "the mapping is not valid JSON", errors={"mapping": ["not JSON"]})
    if not isinstance(mapping, dict):
        raise ApiError(400, "invalid", "the mapping must be an object", errors={"mapping": ["not an object"]})
    problems = unstorable({"mapping": mapping})
    if problems:
        raise ApiError(400, "invalid", "invalid mapping", errors=problems)
    try:
        s.Mapping().load(mapping)
    except ValidationError as err:
        raise ApiError(400, "invalid", "invalid mapping", errors={"mapping": err.messages})
    return mapping


@bp.post(f"{V1}/contacts/imports")
@endpoint("operate", response=ImportOut(), status=201, tags=["imports"], form=IMPORT_FORM,
          json_body=ImportJson())
def start_import():
    """Import contacts: multipart `file` + `mapping` (JSON), or JSON {upload_id, mapping}.
    Files up to 2 MB import in the request (201 with the result); bigger ones (or mode=job)
    answer 202 with a queued import to poll."""
    mode = request.args.get("mode") or request.form.get("mode")
    if mode not in (None, "", "sync", "job"):  # before any byte of a file is stored
        raise ApiError(400, "invalid", "mode is sync or job", errors={"mode": ["sync or job"]})
    if request.files:
        mapping = _form_mapping()
        if mapping is None:
            raise ApiError(400, "invalid", "send the column mapping as form field `mapping` (JSON)",
                           errors={"mapping": ["missing"]})
        # Check the mapping names an e-mail or phone column before any byte is stored.
        if not mapping.get("email") and not mapping.get("phone"):
            raise ApiError(400, "invalid", "the column mapping does not fit the file", errors={
                "mapping": ["map an e-mail or a phone column: without one no record can be imported"]})
        upload, _ = _send_upload()
        upload_id = upload["upload_id"]
        source_id = None
    else:
        if not request.is_json:
            raise ApiError(400, "invalid", "send multipart `file` + `mapping`, or JSON {upload_id, mapping}",
                           errors={"file": ["missing: send the file as multipart field `file`, or"
                                            " JSON {upload_id, mapping}"]})
        body = _load(ImportJson(), _json_body(), "body")
        upload_id, mapping = str(body["upload_id"]), body["mapping"]
        mode = mode or body.get("mode")
        source_id = str(body["data_source_id"]) if body.get("data_source_id") else None
    # No mode: the contacts service runs files up to 2 MB in the call, queues bigger ones.
    data = {"upload_id": upload_id, "mapping": mapping, "mode": mode or None,
            "data_source_id": source_id}
    result = _import_or_discard(data) if request.files else rpc.contacts.import_contacts(g.ctx, data)
    return result, (202 if result["status"] in ("queued", "running") else 201)


def _import_or_discard(data):
    """import_contacts for a file this request uploaded: refused (the file does not fit the
    mapping, has no records...), the upload is deleted, not kept for a day."""
    try:
        return rpc.contacts.import_contacts(g.ctx, data)
    except Exception:
        try:
            rpc.contacts.discard_upload(g.ctx, data["upload_id"])
        except Exception:
            pass  # purged with unused uploads after 24 hours
        raise


@bp.get(f"{V1}/contacts/imports")
@endpoint("read", tags=["imports"])
def list_imports():
    """Import history, newest first."""
    return {"imports": rpc.contacts.list_imports(g.ctx, {})}


@bp.get(f"{V1}/contacts/imports/<import_id>")
@endpoint("read", response=ImportOut(), tags=["imports"])
def get_import(import_id):
    """An import's status, progress (rows_done of rows_total) and, when finished, its result."""
    return rpc.contacts.get_import(g.ctx, import_id)


@bp.get(f"{V1}/contacts/imports/<import_id>/result.csv")
@endpoint("read", tags=["imports"])
def import_result(import_id):
    """Every record's outcome as CSV (record, outcome, contact_id, merged_into, reason, warnings)."""
    text = rpc.contacts.import_result_csv(g.ctx, import_id)
    return Response(text, mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="import-{import_id}.csv"'})


# --- data sources ------------------------------------------------------------------------------

@bp.post(f"{V1}/data-sources")
@endpoint("manage", body=s.DataSourceIn(), status=201, tags=["data sources"])
def create_data_source(body):
    """A file source (keeps its mapping and import history) or an SFTP source (host, port,
    username, password, path); the password is stored encrypted and never returned."""
    return rpc.contacts.create_data_source(g.ctx, _jsonable(body)), 201


@bp.get(f"{V1}/data-sources")
@endpoint("read", tags=["data sources"])
def list_data_sources():
    """Data sources with last sync time and result."""
    return rpc.contacts.list_data_sources(g.ctx)


@bp.get(f"{V1}/data-sources/<source_id>")
@endpoint("read", tags=["data sources"])
def get_data_source(source_id):
    """One data source with its import history."""
    return rpc.contacts.get_data_source(g.ctx, source_id)


@bp.patch(f"{V1}/data-sources/<source_id>")
@endpoint("manage", body=s.DataSourcePatch(), tags=["data sources"])
def update_data_source(source_id, body):
    """Rename or change the saved mapping."""
    return rpc.contacts.update_data_source(g.ctx, source_id, _jsonable(body))


@bp.delete(f"{V1}/data-sources/<source_id>")
@endpoint("manage", status=204, tags=["data sources"])
def delete_data_source(source_id):
    """Delete a data source (its imports stay in the history)."""
    rpc.contacts.delete_data_source(g.ctx, source_id)
    return None, 204


@bp.get(f"{V1}/data-sources/<source_id>/files")
@endpoint("operate", tags=["data sources"])
def list_source_files(source_id):
    """The CSV/XLSX files in an SFTP source's folder."""
    return rpc.contacts.list_source_files(g.ctx, source_id)


class SyncBody(s.SyncIn):
    pass


@bp.post(f"{V1}/data-sources/<source_id>/sync")
@endpoint("operate", body=SyncBody(), status=202, tags=["data sources"])
def sync_data_source(source_id, body):
    """Import the chosen files of an SFTP source (each a job to poll)."""
    return rpc.contacts.sync_data_source(g.ctx, source_id, body), 202


SOURCE_FORM = {"type": "object", "required": ["file"], "properties": {
    "file": IMPORT_FORM["properties"]["file"],
    "mapping": {"type": "string", "description": "a new column mapping (JSON text), saved on"
                                                " the source; default: the source's own"}}}


@bp.post(f"{V1}/data-sources/<source_id>/imports")
@endpoint("operate", response=ImportOut(), status=202, tags=["data sources"], form=SOURCE_FORM)
def import_to_source(source_id):
    """Upload a file to a file source: imported with the source's saved mapping (or a new
    `mapping` form field, which is then saved), as a job."""
    mapping = _form_mapping()
    rpc.contacts.get_data_source(g.ctx, source_id)  # 404 before any byte is stored
    upload, _ = _send_upload()
    return _import_or_discard({"upload_id": upload["upload_id"], "mapping": mapping,
                               "mode": "job", "data_source_id": source_id}), 202


# --- tags --------------------------------------------------------------------------------------

@bp.post(f"{V1}/tags")
@endpoint("operate", body=TagInApi(), response=TagOut(), status=201, tags=["tags"])
def create_tag(body):
    """Create a contact or communication tag (title, colour, active)."""
    colour = body.pop("colour", None)
    body["color"] = body.get("color") or colour
    return rpc.contacts.create_tag(g.ctx, body), 201


@bp.get(f"{V1}/tags")
@endpoint("read", query=TagQuery(), response=TagOut(), many=True, tags=["tags"])
def list_tags(query):
    """Tags with usage counts; filter by kind, active and title."""
    return rpc.contacts.list_tags(g.ctx, query)


@bp.patch(f"{V1}/tags/<tag_id>")
@endpoint("operate", body=s.TagPatch(), response=TagOut(), tags=["tags"])
def update_tag(tag_id, body):
    """Rename, recolour, (de)activate a tag. Inactive tags stay on items but cannot be applied."""
    return rpc.contacts.update_tag(g.ctx, tag_id, body)


@bp.delete(f"{V1}/tags/<tag_id>")
@endpoint("operate", status=204, tags=["tags"])
def delete_tag(tag_id):
    """Delete a tag (and its links)."""
    rpc.contacts.delete_tag(g.ctx, tag_id)
    return None, 204


@bp.post(f"{V1}/tags/<tag_id>/contacts")
@endpoint("operate", body=s.BulkTagging(), tags=["tags"])
def tag_many(tag_id, body):
    """Apply (or with `remove: true` remove) this tag on `contact_ids` or on a `filter`."""
    body = _jsonable(body)
    body["tag_ids"] = [tag_id]
    body["tags"] = []
    return rpc.contacts.bulk_tag(g.ctx, body)


# --- segments ----------------------------------------------------------------------------------

@bp.post(f"{V1}/segments")
@endpoint("operate", body=SegmentInApi(), response=SegmentOut(), status=201, tags=["segments"])
def create_segment(body):
    """Save a segment: {name, rules: {match: all|any, rules: [...]}} (see docs/contacts.md)."""
    return rpc.contacts.create_segment(g.ctx, {"name": body["name"], "description": body.get("description"),
                                               "rules": _rules(body)}), 201


@bp.get(f"{V1}/segments")
@endpoint("read", response=SegmentOut(), many=True, tags=["segments"])
def list_segments():
    """Every segment of the organization."""
    return rpc.contacts.list_segments(g.ctx)


@bp.get(f"{V1}/segments/<segment_id>")
@endpoint("read", response=SegmentOut(), tags=["segments"])
def get_segment(segment_id):
    """One segment with its rules."""
    return rpc.contacts.get_segment(g.ctx, segment_id)


@bp.patch(f"{V1}/segments/<segment_id>")
@endpoint("operate", body=SegmentPatchApi(), response=SegmentOut(), tags=["segments"])
def update_segment(segment_id, body):
    """Rename or change the rules."""
    patch = {k: body[k] for k in ("name", "description") if k in body}
    if "rules" in body:
        patch["rules"] = _rules(body)
    return rpc.contacts.update_segment(g.ctx, segment_id, patch)


@bp.delete(f"{V1}/segments/<segment_id>")
@endpoint("operate", status=204, tags=["segments"])
def delete_segment(segment_id):
    """Delete a segment."""
    rpc.contacts.delete_segment(g.ctx, segment_id)
    return None, 204


@bp.get(f"{V1}/segments/<segment_id>/count")
@endpoint("read", tags=["segments"])
def count_segment(segment_id):
    """How many contacts the segment holds now."""
    return rpc.contacts.count_segment(g.ctx, segment_id)


@bp.get(f"{V1}/segments/<segment_id>/preview")
@endpoint("read", query=PreviewQuery(), tags=["segments"])
def preview_segment(segment_id, query):
    """The first contacts of the segment."""
    return rpc.contacts.preview_segment(g.ctx, segment_id, query["limit"])


@bp.get(f"{V1}/segments/<segment_id>/contacts/<contact_id>/why")
@endpoint("read", tags=["segments"])
def explain_membership(segment_id, contact_id):
    """Why is (or isn't) this contact in this segment: each rule and whether it matched."""
    return rpc.contacts.explain_membership(g.ctx, segment_id, contact_id)


# --- unsubscribe groups (administration) -------------------------------------------------------

@bp.get(f"{V1}/contacts/unsubscribe-groups")
@endpoint("read", tags=["unsubscribes"])
def admin_groups():
    """The organization's unsubscribe groups."""
    return rpc.contacts.list_unsubscribe_groups(g.ctx)


@bp.post(f"{V1}/contacts/unsubscribe-groups")
@endpoint("manage", body=s.GroupIn(), status=201, tags=["unsubscribes"])
def admin_create_group(body):
    """Create an unsubscribe group for one channel."""
    return rpc.contacts.create_unsubscribe_group(g.ctx, body), 201


# --- the Unsubscribe API (machine clients, spec 3.11) ------------------------------------------

def _client():
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "send Authorization: Bearer <access token from /oauth/token>")
    client = rpc.identity.authenticate_client(token.strip())
    # 60 requests a minute per client, counted in PostgreSQL (contacts), so every gateway
    # process shares one count: RateLimited (429 with Retry-After) past it.
    rpc.contacts.count_api_request(client["client_id"])
    return client


def _client_ctx(client, org_id):
    return {"org_id": org_id, "user_id": None, "role": "system"}


def _org_slugs(client):
    """{org_id: slug} of the organizations the client may act on."""
    slugs = {}
    for oid in client.get("org_ids") or []:
        try:
            slugs[oid] = rpc.identity.get_organization(_client_ctx(client, oid)).get("slug")
        except e.DomainError:
            continue
    return slugs


def _target_org(client, group_id=None, org_slug=None, org_id=None):
    """The organization the call concerns: the group's, the named one, or the default. group_id
    and org_slug together are refused (spec 3.11)."""
    if group_id and org_slug:
        raise ApiError(400, "invalid_request", "give group_id or org_slug, not both")
    allowed = list(client.get("org_ids") or [])
    if group_id:
        owner = rpc.contacts.unsubscribe_group_owner(group_id, allowed)
        if owner is None:
            raise ApiError(403, "unauthorized_organization", "the group is outside this credential's scope")
        return owner
    if org_slug or org_id:
        wanted = org_id
        if org_slug:
            wanted = next((oid for oid, slug in _org_slugs(client).items() if slug == org_slug), None)
        if wanted not in allowed:
            raise ApiError(403, "unauthorized_organization", "the organization is outside this credential's scope")
        return wanted
    if not client.get("default_org_id"):
        raise ApiError(403, "unauthorized_organization", "this credential has no default organization")
    return client["default_org_id"]


# A listing cursor carries the whole query (spec 3.11: a client pages with the cursor alone):
# which client asked, the organization, group, channel, since/until, and the position the contacts
# service returned. It is signed (HMAC-SHA256 with a key derived from SECRET_KEY), so a client
# cannot edit it into another organization's or group's listing; the organization is still
# checked against the client's scope on every page, as that scope may have shrunk meanwhile.

def _cursor_key():
    secret = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(secret, b"unsubscribe-api listing cursor", hashlib.sha256).digest()


def _b64(raw):
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def seal_cursor(query):
    body = json.dumps(query, separators=(",", ":"), sort_keys=True).encode()
    mac = hmac.new(_cursor_key(), body, hashlib.sha256).digest()[:16]
    return f"{_b64(body)}.{_b64(mac)}"


def open_cursor(cursor):
    """The query a cursor carries, or 400 when this API did not make it (or it was edited)."""
    bad = ApiError(400, "invalid_request", "not a cursor this API returned",
                   errors={"cursor": ["not a cursor this API returned"]})
    body, _, mac = (cursor or "").partition(".")
    try:
        body, mac = _unb64(body), _unb64(mac)
    except (ValueError, TypeError):
        raise bad
    if not hmac.compare_digest(hmac.new(_cursor_key(), body, hashlib.sha256).digest()[:16], mac):
        raise bad
    return json.loads(body)


# Spec 3.11 and section 6: a cursor excludes the targeting parameters; since/until travel in it too.
CARRIED_BY_CURSOR = ("group_id", "org_slug", "since", "until")


class ListQuery(s.Base):
    group_id = fields.UUID(load_default=None, allow_none=True)
    org_slug = fields.String(load_default=None, allow_none=True)
    since = fields.String(load_default=None, allow_none=True)
    until = fields.String(load_default=None, allow_none=True)
    cursor = fields.String(load_default=None, allow_none=True, metadata={
        "description": "next_cursor of the previous page; it carries the query, so send it alone"
                       " (with limit at most): with group_id, org_slug, since or until it is a 400"})
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class BatchBody(s.Base):
    # Items are checked one by one by the contacts service (invalid_item names the index).
    items = fields.List(fields.Raw(allow_none=True), required=True)
    group_id = fields.UUID(load_default=None, allow_none=True)
    org_slug = fields.String(load_default=None, allow_none=True)


class GroupUse(Schema):
    org = fields.String(metadata={"description": "organization slug"})
    channels = fields.List(fields.String())


class GroupOut(Schema):
    id = fields.String()
    name = fields.String()
    description = fields.String(allow_none=True)
    kind = fields.String(metadata={"description": "email | phone_number (serves sms and phone)"})
    channel = fields.String(metadata={"description": "the channel the group was created for"})
    unsubscribes = fields.Integer(metadata={"description": "identifiers opted out now"})
    owner = fields.String(allow_none=True, metadata={"description": "owning organization's slug"})
    used_by = fields.List(fields.Nested(GroupUse))
    created_at = fields.String()


class GroupList(Schema):
    data = fields.List(fields.Nested(GroupOut))


class RecordOut(Schema):
    identifier = fields.String()
    unsubscribed = fields.Boolean()
    source = fields.String()
    updated_at = fields.String()


class RecordPage(Schema):
    group_id = fields.String(allow_none=True)
    data = fields.List(fields.Nested(RecordOut))
    next_cursor = fields.String(allow_none=True)
    has_more = fields.Boolean()


class ChangeOut(Schema):
    identifier = fields.String()
    unsubscribed = fields.Boolean()
    updated_at = fields.String()


class BatchOut(Schema):
    group_id = fields.String(allow_none=True)
    processed = fields.Integer()
    updated = fields.List(fields.Nested(ChangeOut), metadata={"description": "one per item, in input order"})


def _channel(channel):
    if channel not in CHANNELS:
        raise ApiError(404, "not_found", "channel must be email, sms or phone")
    return channel


def _api_group(group, slugs):
    """The spec's group shape: organizations as slugs, only those the client may see."""
    out = {k: v for k, v in group.items() if k not in ("org_id", "used_by")}
    out["owner"] = slugs.get(group["org_id"])
    out["used_by"] = [{"org": slugs[u["org_id"]], "channels": u["channels"]}
                      for u in group["used_by"] if u["org_id"] in slugs]
    return out


@bp.get(f"{V1}/unsubscribe-groups")
@endpoint("public", response=GroupList(), tags=["unsubscribe api"])
def api_groups():
    """Every unsubscribe group the credential reaches (not paginated). OAuth access token."""
    client = _client()
    slugs = _org_slugs(client)
    out = []
    for oid in slugs:
        out += [_api_group(gr, slugs) for gr in rpc.contacts.list_unsubscribe_groups(_client_ctx(client, oid))]
    return {"data": out}


@bp.get(f"{V1}/unsubscribe/<channel>")
@endpoint("public", query=ListQuery(), response=RecordPage(), tags=["unsubscribe api"])
def api_list(channel, query):
    """Unsubscribe records newest first: group_id xor org_slug (or the default org), since, until,
    limit (default 100); then `cursor` alone for the next page."""
    client = _client()
    _channel(channel)
    if query.get("cursor"):
        given = [name for name in CARRIED_BY_CURSOR if query.get(name)]
        if given:
            raise ApiError(400, "invalid_request", "a cursor carries the query: send it without "
                           + ", ".join(given), errors={name: ["not allowed with cursor"] for name in given})
        carried = open_cursor(query["cursor"])
        if carried["client"] != client["client_id"] or carried["channel"] != channel:
            raise ApiError(400, "invalid_request", "this cursor belongs to another listing",
                           errors={"cursor": ["made for another client or channel"]})
        org_id = carried["org"]
        if org_id not in (client.get("org_ids") or []):
            raise ApiError(403, "unauthorized_organization", "the organization is outside this credential's scope")
        q = {k: carried[k] for k in ("group_id", "since", "until")}
        q["cursor"] = carried["after"]
    else:
        group_id = str(query["group_id"]) if query.get("group_id") else None
        org_id = _target_org(client, group_id, query.get("org_slug"))
        q = {"group_id": group_id, "since": query.get("since"), "until": query.get("until"), "cursor": None}
    page = rpc.contacts.list_unsubscribes(_client_ctx(client, org_id),
                                          dict(q, channel=channel, limit=query["limit"]))
    if page["next_cursor"]:
        page["next_cursor"] = seal_cursor({"client": client["client_id"], "org": org_id, "channel": channel,
                                           "group_id": q["group_id"], "since": q["since"],
                                           "until": q["until"], "after": page["next_cursor"]})
    return page


MAX_ITEMS = MAX_BATCH  # the contacts service's own bound, checked here before the RPC


def _batch(channel, unsubscribed):
    client = _client()
    _channel(channel)
    raw = request.get_json(silent=True)
    if not isinstance(raw, dict):
        raise ApiError(400, "invalid_request", "send a JSON object {items: [...]}")
    try:
        body = BatchBody().load(raw)
    except ValidationError as err:
        # A malformed request (not one bad item): spec 3.11's invalid_request, fields named.
        raise ApiError(400, "invalid_request", "invalid request body", errors=err.messages)
    if not body["items"]:
        raise ApiError(400, "invalid_request", "give at least one item",
                       errors={"items": ["at least one item"]})
    if len(body["items"]) > MAX_ITEMS:
        # The request is too big, not one of its items wrong: not `invalid_item` (whose
        # item_error names an item's problem, spec 3.11).
        raise ApiError(400, "invalid_request", f"at most {MAX_ITEMS:,} items per request",
                       errors={"items": [f"{len(body['items']):,} items; at most {MAX_ITEMS:,}"]})
    group_id = str(body["group_id"]) if body.get("group_id") else None
    org_id = _target_org(client, group_id, body.get("org_slug"))
    try:
        return rpc.contacts.change_unsubscribes(_client_ctx(client, org_id), {
            "channel": channel, "items": body["items"], "group_id": group_id,
            "unsubscribed": unsubscribed, "source": "api"})
    except e.Invalid as err:
        if err.details.get("error_code") == "invalid_item":
            raise ApiError(400, "invalid_item", err.message, item_error=err.details.get("item_error"),
                           index=err.details.get("index"))
        raise


@bp.post(f"{V1}/unsubscribe/<channel>/add")
@endpoint("public", response=BatchOut(), tags=["unsubscribe api"])
def api_add(channel):
    """Opt identifiers out (<= 10,000 items, all-or-nothing, idempotent; phones in E.164)."""
    return _batch(channel, True)


@bp.post(f"{V1}/unsubscribe/<channel>/remove")
@endpoint("public", response=BatchOut(), tags=["unsubscribe api"])
def api_remove(channel):
    """Opt identifiers back in (<= 10,000 items, all-or-nothing, idempotent; phones in E.164)."""
    return _batch(channel, False)


def _jsonable(data):
    return json.loads(json.dumps(data, default=str))
