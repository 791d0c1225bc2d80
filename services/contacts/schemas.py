"""Marshmallow schemas for every RPC payload the contacts service takes."""
from marshmallow import EXCLUDE, RAISE, fields, validate, validates_schema, ValidationError

from services.common.schemas import Strict, Timestamp

CHANNELS = ("email", "sms", "phone")
SOURCES = ("api", "admin", "import", "user_action", "user_intent")


class Base(Strict):
    """Request payloads: an unknown field is refused, naming it (services/common/schemas.Strict)."""


class TagTitle(fields.String):
    """A tag's title as a person types it: trimmed, inner white space folded, 1-100 characters."""
    default_error_messages = {"blank": "a tag title must not be blank",
                              "long": "a tag title has at most 100 characters"}

    def _deserialize(self, value, attr, data, **kwargs):
        title = " ".join(super()._deserialize(value, attr, data, **kwargs).split())
        if not title:
            raise self.make_error("blank")
        if len(title) > 100:
            raise self.make_error("long")
        return title


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
    tags = fields.List(TagTitle(), validate=validate.Length(max=50))
    unsubscribed = fields.Dict(keys=fields.String(validate=validate.OneOf(CHANNELS)),
                               values=fields.Boolean())
    # false clears the mark a hard bounce left (owner or admin); a bounce is what sets it.
    email_undeliverable = fields.Boolean()


def _column(**kw):
    return fields.String(validate=validate.Length(max=COLUMN_CHARS), **kw)


COLUMN_CHARS = 1000  # a column name
MAX_COLUMNS = 1000   # columns one mapping entry may list


class Mapping(Base):
    class Meta:
        unknown = RAISE  # a misspelt key ("emial") would silently map nothing

    email = _column(allow_none=True)
    phone = _column(allow_none=True)
    name = _column(allow_none=True)
    first_name = _column(allow_none=True)
    last_name = _column(allow_none=True)
    timezone = _column(allow_none=True)
    country = _column(allow_none=True)
    tags = fields.Raw(allow_none=True)
    # Tags every imported contact gets; the same limits as a tag's title.
    add_tags = fields.List(TagTitle(),
                           validate=validate.Length(max=50))
    unsubscribe = fields.Dict(keys=fields.String(validate=validate.OneOf(CHANNELS)),
                              values=_column(allow_none=True))
    custom = fields.Raw(load_default="rest")
    ignore = fields.List(_column(), validate=validate.Length(max=MAX_COLUMNS))

    @validates_schema
    def check(self, data, **kw):
        for key, allowed in (("tags", "a column name or a list of them"),
                             ("custom", '"rest", "none" or a list of columns')):
            value = data.get(key)
            if value is None or (key == "custom" and value in ("rest", "none")):
                continue
            names = [value] if isinstance(value, str) and key == "tags" else value
            if not (isinstance(names, list) and len(names) <= MAX_COLUMNS
                    and all(isinstance(n, str) and len(n) <= COLUMN_CHARS for n in names)):
                raise ValidationError(allowed, key)


class UploadStart(Base):
    filename = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=300))
    chunk = fields.String(required=True)   # base64 of the first chunk
    last = fields.Boolean(load_default=False)


class ImportStart(Base):
    upload_id = fields.UUID(required=True)
    mapping = fields.Nested(Mapping, load_default=None, allow_none=True)
    data_source_id = fields.UUID(load_default=None, allow_none=True)
    # sync: run in the call; job: queue it; none given: sync up to imports.SYNC_LIMIT bytes.
    mode = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(("sync", "job")))
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
    created_from = Timestamp(load_default=None, allow_none=True)
    created_to = Timestamp(load_default=None, allow_none=True)
    after = fields.UUID(load_default=None, allow_none=True)
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=1000))

    @validates_schema
    def ordered(self, data, **kwargs):
        if data.get("created_from") and data.get("created_to") and \
                data["created_from"] >= data["created_to"]:
            raise ValidationError("must be after created_from", "created_to")


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
    tags = fields.List(TagTitle(), load_default=list, validate=validate.Length(max=50))
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
    """An admin's change in the contact UI: it always records source admin (spec 131), so a
    client cannot pass its edit off as the contact's own action or an import."""
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    unsubscribed = fields.Boolean(load_default=True)
    source = fields.String(load_default="admin", validate=validate.Equal(
        "admin", error="an admin's change always records source admin; leave source out"))


class UnsubscribeBatch(Base):
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    items = fields.List(fields.Raw(), required=True)
    group_id = fields.UUID(load_default=None, allow_none=True)
    unsubscribed = fields.Boolean(required=True)
    source = fields.String(load_default="api", validate=validate.OneOf(SOURCES))


class UnsubscribeList(Base):
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    group_id = fields.UUID(load_default=None, allow_none=True)
    since = Timestamp(load_default=None, allow_none=True)
    until = Timestamp(load_default=None, allow_none=True)
    cursor = fields.String(load_default=None, allow_none=True)
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class GroupIn(Base):
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(load_default=None, allow_none=True)


class OptOutEvent(Base):
    class Meta:
        unknown = EXCLUDE  # events: contracts grow additively

    event_id = fields.UUID(required=True)
    org_id = fields.UUID(required=True)
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    identifier = fields.String(required=True)
    source = fields.String(load_default="user_action", validate=validate.OneOf(SOURCES))
    unsubscribed = fields.Boolean(load_default=True)


class BounceEvent(Base):
    class Meta:
        unknown = EXCLUDE  # events: contracts grow additively

    event_id = fields.UUID(required=True)
    org_id = fields.UUID(required=True)
    channel = fields.String(load_default="email", allow_none=True)
    identifier = fields.String(required=True)
    bounce_type = fields.String(required=True, validate=validate.OneOf(("hard", "soft")))
    diagnostic = fields.String(load_default=None, allow_none=True)
    communication_id = fields.Raw(load_default=None, allow_none=True)
    contact_id = fields.Raw(load_default=None, allow_none=True)
    occurred_at = Timestamp(load_default=None, allow_none=True)


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
