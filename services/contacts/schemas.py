"""Marshmallow schemas for every RPC payload the contacts service takes."""
from marshmallow import EXCLUDE, Schema, fields, validate, validates_schema, ValidationError

CHANNELS = ("email", "sms", "phone")
SOURCES = ("api", "admin", "import", "user_action", "user_intent")


class Base(Schema):
    class Meta:
        unknown = EXCLUDE


class ContactIn(Base):
    name = fields.String(allow_none=True, validate=validate.Length(max=300))
    first_name = fields.String(allow_none=True, validate=validate.Length(max=200))
    last_name = fields.String(allow_none=True, validate=validate.Length(max=200))
    email = fields.String(allow_none=True, validate=validate.Length(max=320))
    phone = fields.String(allow_none=True, validate=validate.Length(max=64))
    phone_extension = fields.String(allow_none=True, validate=validate.Length(max=20))
    country = fields.String(allow_none=True)
    timezone = fields.String(allow_none=True)
    active = fields.Boolean()
    custom = fields.Dict(keys=fields.String())
    tags = fields.List(fields.String(validate=validate.Length(min=1, max=100)))
    unsubscribed = fields.Dict(keys=fields.String(validate=validate.OneOf(CHANNELS)),
                               values=fields.Boolean())
    # false clears the mark a hard bounce left (owner or admin); a bounce is what sets it.
    email_undeliverable = fields.Boolean()


class Mapping(Base):
    email = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    name = fields.String(allow_none=True)
    first_name = fields.String(allow_none=True)
    last_name = fields.String(allow_none=True)
    timezone = fields.String(allow_none=True)
    country = fields.String(allow_none=True)
    tags = fields.Raw(allow_none=True)
    add_tags = fields.List(fields.String())
    unsubscribe = fields.Dict(keys=fields.String(validate=validate.OneOf(CHANNELS)),
                              values=fields.String(allow_none=True))
    custom = fields.Raw(load_default="rest")
    ignore = fields.List(fields.String())

    @validates_schema
    def check(self, data, **kw):
        tags = data.get("tags")
        if tags is not None and not isinstance(tags, (str, list)):
            raise ValidationError("a column name or a list of them", "tags")
        custom = data.get("custom")
        if not (custom in ("rest", "none") or isinstance(custom, list)):
            raise ValidationError('"rest", "none" or a list of columns', "custom")


class UploadStart(Base):
    filename = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=300))
    chunk = fields.String(required=True)   # base64 of the first chunk
    last = fields.Boolean(load_default=False)


class ImportStart(Base):
    upload_id = fields.UUID(required=True)
    mapping = fields.Nested(Mapping, load_default=None, allow_none=True)
    data_source_id = fields.UUID(load_default=None, allow_none=True)
    mode = fields.String(load_default="sync", validate=validate.OneOf(("sync", "job")))
    default_country = fields.String(load_default=None, allow_none=True)
    default_timezone = fields.String(load_default=None, allow_none=True)


class ContactQuery(Base):
    q = fields.String(load_default=None, allow_none=True)
    tag_id = fields.UUID(load_default=None, allow_none=True)
    segment_id = fields.UUID(load_default=None, allow_none=True)
    active = fields.Boolean(load_default=None, allow_none=True)
    unsubscribed = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(CHANNELS))
    has_email = fields.Boolean(load_default=None, allow_none=True)
    has_phone = fields.Boolean(load_default=None, allow_none=True)
    created_from = fields.DateTime(load_default=None, allow_none=True)
    created_to = fields.DateTime(load_default=None, allow_none=True)
    after = fields.UUID(load_default=None, allow_none=True)
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=1000))


class TagIn(Base):
    title = fields.String(required=True, validate=validate.Length(min=1, max=100))
    kind = fields.String(load_default="contact", validate=validate.OneOf(("contact", "communication")))
    color = fields.String(load_default=None, allow_none=True,
                          validate=validate.Regexp(r"^#[0-9a-fA-F]{6}$", error="a colour like #1f77b4"))
    active = fields.Boolean(load_default=True)


class TagPatch(Base):
    title = fields.String(validate=validate.Length(min=1, max=100))
    color = fields.String(allow_none=True, validate=validate.Regexp(r"^#[0-9a-fA-F]{6}$"))
    active = fields.Boolean()


class Tagging(Base):
    tag_ids = fields.List(fields.UUID(), load_default=list)
    tags = fields.List(fields.String(validate=validate.Length(min=1, max=100)), load_default=list)
    remove = fields.Boolean(load_default=False)


class BulkTagging(Tagging):
    filter = fields.Dict(load_default=dict)
    contact_ids = fields.List(fields.UUID(), load_default=None, allow_none=True)


class SegmentIn(Base):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(load_default=None, allow_none=True)
    rules = fields.Dict(required=True)


class SegmentPatch(Base):
    name = fields.String(validate=validate.Length(min=1, max=200))
    description = fields.String(allow_none=True)
    rules = fields.Dict()


class Resolve(Base):
    segment_id = fields.UUID(required=True)
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    after = fields.UUID(load_default=None, allow_none=True)
    limit = fields.Integer(load_default=1000, validate=validate.Range(min=1, max=1000))


class Reachable(Base):
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    identifiers = fields.List(fields.String(), required=True, validate=validate.Length(max=10000))


class FindContact(Base):
    email = fields.String(load_default=None, allow_none=True)
    phone = fields.String(load_default=None, allow_none=True)


class Unsubscribe(Base):
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    unsubscribed = fields.Boolean(load_default=True)
    source = fields.String(load_default="admin", validate=validate.OneOf(SOURCES))


class UnsubscribeBatch(Base):
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    items = fields.List(fields.Raw(), required=True)
    group_id = fields.UUID(load_default=None, allow_none=True)
    unsubscribed = fields.Boolean(required=True)
    source = fields.String(load_default="api", validate=validate.OneOf(SOURCES))


class UnsubscribeList(Base):
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    group_id = fields.UUID(load_default=None, allow_none=True)
    since = fields.DateTime(load_default=None, allow_none=True)
    until = fields.DateTime(load_default=None, allow_none=True)
    cursor = fields.String(load_default=None, allow_none=True)
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class GroupIn(Base):
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(load_default=None, allow_none=True)


class OptOutEvent(Base):
    event_id = fields.UUID(required=True)
    org_id = fields.UUID(required=True)
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    identifier = fields.String(required=True)
    source = fields.String(load_default="user_action", validate=validate.OneOf(SOURCES))
    unsubscribed = fields.Boolean(load_default=True)


class BounceEvent(Base):
    event_id = fields.UUID(required=True)
    org_id = fields.UUID(required=True)
    channel = fields.String(load_default="email", allow_none=True)
    identifier = fields.String(required=True)
    bounce_type = fields.String(required=True, validate=validate.OneOf(("hard", "soft")))
    diagnostic = fields.String(load_default=None, allow_none=True)
    communication_id = fields.Raw(load_default=None, allow_none=True)
    contact_id = fields.Raw(load_default=None, allow_none=True)
    occurred_at = fields.DateTime(load_default=None, allow_none=True)


class SftpIn(Base):
    host = fields.String(required=True, validate=validate.Length(min=1, max=255))
    port = fields.Integer(load_default=22, validate=validate.Range(min=1, max=65535))
    username = fields.String(required=True, validate=validate.Length(min=1, max=200))
    password = fields.String(load_default=None, allow_none=True, load_only=True)
    path = fields.String(load_default=".", validate=validate.Length(max=1000))
    # The server's host key as OpenSSH prints it (`SHA256:...`); without it the first connection
    # is refused with the fingerprint the server presented, to confirm (docs/contacts.md).
    host_key_fingerprint = fields.String(load_default=None, allow_none=True,
                                         validate=validate.Regexp(r"^SHA256:[A-Za-z0-9+/]{43}=?$",
                                                                  error="expected SHA256:<base64>, as ssh-keygen -lf prints it"))


class SftpPatch(Base):
    host_key_fingerprint = fields.String(required=True, allow_none=True,
                                         validate=validate.Regexp(r"^SHA256:[A-Za-z0-9+/]{43}=?$",
                                                                  error="expected SHA256:<base64>, as ssh-keygen -lf prints it"))


class DataSourceIn(Base):
    kind = fields.String(required=True, validate=validate.OneOf(("file", "sftp")))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    mapping = fields.Nested(Mapping, load_default=None, allow_none=True)
    sftp = fields.Nested(SftpIn, load_default=None, allow_none=True)


class DataSourcePatch(Base):
    name = fields.String(validate=validate.Length(min=1, max=200))
    mapping = fields.Nested(Mapping)
    sftp = fields.Nested(SftpPatch)


class SyncIn(Base):
    files = fields.List(fields.String(validate=validate.Length(min=1, max=255)), required=True,
                        validate=validate.Length(min=1, max=100))
