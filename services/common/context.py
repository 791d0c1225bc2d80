"""The caller's context that every RPC takes first: {org_id, user_id, role}."""
from marshmallow import Schema, fields, validate, ValidationError, EXCLUDE

from services.common.errors import Invalid

ROLES = ("owner", "admin", "member", "viewer")


class ContextSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    org_id = fields.UUID(required=True)
    user_id = fields.UUID(allow_none=True, load_default=None)
    role = fields.String(validate=validate.OneOf(ROLES + ("system",)), load_default="system")
    request_id = fields.String(load_default=None, allow_none=True)


def context(ctx):
    """Validated context with org_id as a string (what SQL parameters want)."""
    try:
        data = ContextSchema().load(ctx or {})
    except ValidationError as err:
        raise Invalid("bad request context", errors=err.messages)
    data["org_id"] = str(data["org_id"])
    if data["user_id"] is not None:
        data["user_id"] = str(data["user_id"])
    return data
