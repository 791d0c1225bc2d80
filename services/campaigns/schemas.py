"""Marshmallow schemas for every RPC payload and event the campaigns service takes. The gateway
uses the same schemas for request bodies and query strings.

One rule for the whole campaigns API: a request body or query string with a field the route does
not know is refused (400, the field named: "unknown field; did you mean note?"), so a typo never
silently does nothing. Every request schema derives from `Strict`. Events we consume are the
other way round (EXCLUDE): contracts grow additively."""
import re

from marshmallow import EXCLUDE, Schema, fields, validate, ValidationError, validates_schema

from services.common.schemas import Strict

CHANNELS = ("email", "sms", "phone")
AGENT_TYPES = ("writer", "reviewer")
PROVIDERS = ("builtin", "openai_compatible")
CAMPAIGN_STATUSES = ("active", "inactive")
RUN_TYPES = ("test", "live")
RUN_STATUSES = ("queued", "running", "completed", "failed", "cancelled")
DRAFT_STATUSES = ("generating", "pending_approval", "approved", "sending", "sent", "rejected",
                  "failed")


class Id(fields.UUID):
    """A UUID that loads as its canonical string (JSON-safe across RPC)."""

    def _deserialize(self, value, attr, data, **kwargs):
        return str(super()._deserialize(value, attr, data, **kwargs))


def text(max_len, required=False, **kw):
    if required:
        return fields.String(required=True, validate=validate.Length(min=1, max=max_len), **kw)
    return fields.String(load_default="", validate=validate.Length(max=max_len), **kw)


class GoalSchema(Strict):
    name = text(200, required=True)
    description = text(5000)


class TemplateSchema(Strict):
    name = text(200, required=True)
    channel = fields.String(load_default="email", validate=validate.OneOf(CHANNELS))
    subject = text(500)
    preheader = text(500)
    body = text(100_000, required=True)


class AgentSchema(Strict):
    type = fields.String(required=True, validate=validate.OneOf(AGENT_TYPES))
    name = text(200, required=True)
    title = text(200)
    model = fields.String(load_default="builtin", validate=validate.Length(min=1, max=200))
    provider = fields.String(load_default="builtin", validate=validate.OneOf(PROVIDERS))
    base_url = fields.Url(load_default=None, allow_none=True, require_tld=False,
                          schemes={"http", "https"})
    # The NAME of the environment variable that holds the key (the key never enters the API).
    api_key_env = fields.String(load_default=None, allow_none=True,
                                validate=validate.Regexp(r"^[A-Z_][A-Z0-9_]{0,127}$",
                                                         error="an environment variable name "
                                                               "like OPENAI_API_KEY"))
    voice = text(2000)
    instructions = text(20_000)

    @validates_schema
    def no_key_values(self, data, **kwargs):
        value = data.get("api_key_env") or ""
        if re.match(r"^(SK|sk)[-_]", value):
            raise ValidationError("give the variable's name, not the key", "api_key_env")


class CampaignSchema(Strict):
    name = text(200, required=True)
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    goal_id = Id(load_default=None, allow_none=True)
    segment_id = Id(load_default=None, allow_none=True)
    writer_agent_id = Id(load_default=None, allow_none=True)
    reviewer_agent_id = Id(load_default=None, allow_none=True)
    template_id = Id(load_default=None, allow_none=True)
    instructions = text(20_000)
    status = fields.String(load_default="active", validate=validate.OneOf(CAMPAIGN_STATUSES))


class StartRunSchema(Strict):
    HINTS = {"run_type": "type"}

    type = fields.String(required=True, validate=validate.OneOf(RUN_TYPES))


class PreflightQuery(Strict):
    type = fields.String(load_default="live", validate=validate.OneOf(RUN_TYPES))


class NoteSchema(Strict):
    HINTS = {"reason": "note", "comment": "note", "message": "note"}

    note = fields.String(load_default="", validate=validate.Length(max=2000))


class PageQuery(Strict):
    HINTS = {"cursor": "after", "next_cursor": "after", "page": "after", "per_page": "limit",
             "page_size": "limit"}

    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    after = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=200))


class AgentQuery(PageQuery):
    type = fields.String(load_default=None, validate=validate.OneOf(AGENT_TYPES))


class TemplateQuery(PageQuery):
    channel = fields.String(load_default=None, validate=validate.OneOf(CHANNELS))


class CampaignQuery(PageQuery):
    channel = fields.String(load_default=None, validate=validate.OneOf(CHANNELS))
    status = fields.String(load_default=None, validate=validate.OneOf(CAMPAIGN_STATUSES))


class RunQuery(PageQuery):
    campaign_id = Id(load_default=None)
    status = fields.String(load_default=None, validate=validate.OneOf(RUN_STATUSES))
    run_type = fields.String(load_default=None, validate=validate.OneOf(RUN_TYPES))
    channel = fields.String(load_default=None, validate=validate.OneOf(CHANNELS))


class DraftQuery(PageQuery):
    status = fields.String(load_default=None, validate=validate.OneOf(DRAFT_STATUSES))
    campaign_id = Id(load_default=None)
    run_id = Id(load_default=None)
    is_test = fields.Boolean(load_default=None)


# --- events this service consumes -----------------------------------------------------------

class Event(Schema):
    class Meta:
        unknown = EXCLUDE

    event_id = fields.UUID(required=True)
    org_id = Id(required=True)


class OrganizationCreated(Event):
    name = fields.String(load_default="")
    description = fields.String(load_default="", allow_none=True)


class RunQueued(Event):
    run_id = Id(required=True)


class RunPage(Event):
    run_id = Id(required=True)
    cursor = fields.String(load_default=None, allow_none=True)


class SendResult(Schema):
    class Meta:
        unknown = EXCLUDE

    draft_id = Id(load_default=None, allow_none=True)
    communication_id = fields.Raw(load_default=None, allow_none=True)
    run_id = fields.Raw(load_default=None, allow_none=True)
    status = fields.String(required=True)
    error = fields.String(load_default=None, allow_none=True)


class CommunicationsSent(Event):
    results = fields.List(fields.Nested(SendResult), load_default=list)


class ReplyReceived(Event):
    communication_id = fields.Raw(load_default=None, allow_none=True)
    thread_id = fields.Raw(load_default=None, allow_none=True)
    contact_id = Id(load_default=None, allow_none=True)
    run_id = Id(load_default=None, allow_none=True)
    campaign_id = Id(load_default=None, allow_none=True)


# --- what the API answers (documentation: the OpenAPI document is generated from these) -------

class GoalOut(Schema):
    id = fields.String()
    name = fields.String()
    description = fields.String()
    is_starter = fields.Boolean()
    created_at = fields.String()
    updated_at = fields.String()


class TemplateOut(GoalOut):
    channel = fields.String()
    subject = fields.String()
    preheader = fields.String()
    body = fields.String()


class AgentOut(GoalOut):
    type = fields.String()
    title = fields.String()
    model = fields.String()
    provider = fields.String()
    base_url = fields.String(allow_none=True)
    api_key_env = fields.String(allow_none=True)
    voice = fields.String()
    instructions = fields.String()
    active_campaign_count = fields.Integer()


class VersionOut(Schema):
    version = fields.Integer()
    instructions = fields.String()
    created_by = fields.String(allow_none=True)
    created_at = fields.String()


class CampaignOut(Schema):
    id = fields.String()
    name = fields.String()
    channel = fields.String()
    goal_id = fields.String(allow_none=True)
    segment_id = fields.String(allow_none=True)
    writer_agent_id = fields.String(allow_none=True)
    reviewer_agent_id = fields.String(allow_none=True)
    template_id = fields.String(allow_none=True)
    instructions = fields.String()
    status = fields.String()
    version = fields.Integer()
    is_starter = fields.Boolean()
    versions = fields.List(fields.Nested(VersionOut))  # the latest 20, newest first
    versions_total = fields.Integer()
    active_runs = fields.List(fields.Dict())
    created_at = fields.String()
    updated_at = fields.String()


class Requirement(Schema):
    requirement = fields.String()
    message = fields.String()
    channel = fields.String()
    missing = fields.List(fields.String())


class PreflightOut(Schema):
    ready = fields.Boolean()
    reasons = fields.List(fields.Nested(Requirement))


class CountsOut(Schema):
    targeted = fields.Integer()
    skipped = fields.Integer()
    drafted = fields.Integer()
    approved = fields.Integer()
    rejected = fields.Integer()
    sent = fields.Integer()
    failed = fields.Integer()
    replied = fields.Integer()
    pending_approval = fields.Integer()
    flagged = fields.Integer()


class SkipOut(Schema):
    contact_id = fields.String(allow_none=True)
    recipient_key = fields.String()
    reason = fields.String()


class RunOut(Schema):
    id = fields.String()
    campaign_id = fields.String()
    channel = fields.String()
    run_type = fields.String()
    status = fields.String()
    segment_id = fields.String(allow_none=True)
    version = fields.Integer()
    instructions = fields.String()
    snapshot = fields.Dict()
    audience_exhausted = fields.Boolean()
    error = fields.String(allow_none=True)
    created_by = fields.String(allow_none=True)
    created_at = fields.String()
    started_at = fields.String(allow_none=True)
    finished_at = fields.String(allow_none=True)
    counts = fields.Nested(CountsOut)
    skips = fields.List(fields.Nested(SkipOut))
    skips_by_reason = fields.Dict(keys=fields.String(), values=fields.Integer())


class HistoryOut(Schema):
    from_status = fields.String(allow_none=True)
    to_status = fields.String()
    actor = fields.String()
    note = fields.String()
    at = fields.String()


class DraftOut(Schema):
    id = fields.String()
    run_id = fields.String()
    campaign_id = fields.String()
    channel = fields.String()
    is_test = fields.Boolean()
    contact_id = fields.String(allow_none=True)
    to_address = fields.String()
    to_name = fields.String()
    subject = fields.String()
    preheader = fields.String()
    body = fields.String()
    status = fields.String()
    verdict = fields.String(allow_none=True)
    review_reasons = fields.List(fields.String())
    error = fields.String(allow_none=True)
    attempt = fields.Integer()
    communication_id = fields.String(allow_none=True)
    approved_at = fields.String(allow_none=True)
    replied_at = fields.String(allow_none=True)
    created_at = fields.String()
    updated_at = fields.String()
    allowed_actions = fields.List(fields.String())
    review = fields.Nested(Schema.from_dict({"verdict": fields.String(allow_none=True),
                                             "reasons": fields.List(fields.String())},
                                            name="DraftReview"))
    contact = fields.Dict()
    history = fields.List(fields.Nested(HistoryOut))
    # "class" is a Python keyword: processing | awaiting_action | final
    draft_class = fields.String(data_key="class")


class ApproveRunOut(Schema):
    run_id = fields.String()
    approved = fields.Integer()


def page_of(item_schema, name):
    """A keyset page schema: {items: [...], next_cursor}."""
    return Schema.from_dict({"items": fields.List(fields.Nested(item_schema)),
                             "next_cursor": fields.String(allow_none=True)}, name=name)
