"""Marshmallow schemas for the reporting RPC and the events it consumes."""
from marshmallow import INCLUDE, Schema, ValidationError, fields, validate, validates_schema

from services.common.schemas import Strict
from services.reporting.metrics import CHANNELS


class AnalyticsQuery(Strict):
    """Filters of `analytics(ctx, query)`. Dates are UTC days (YYYY-MM-DD), both inclusive."""

    from_ = fields.Date(data_key="from", load_default=None, allow_none=True)
    to = fields.Date(load_default=None, allow_none=True)
    channel = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(CHANNELS))
    campaign_id = fields.UUID(load_default=None, allow_none=True)
    run_id = fields.UUID(load_default=None, allow_none=True)
    include_test = fields.Boolean(load_default=False)

    @validates_schema
    def range_in_order(self, data, **kwargs):
        if data.get("from_") and data.get("to") and data["from_"] > data["to"]:
            raise ValidationError("must be on or after 'from'", field_name="to")


def as_filters(query):
    """Loaded AnalyticsQuery -> plain filters keyed as the contract names them."""
    filters = dict(query)
    filters["from"] = filters.pop("from_", None)
    return filters


class EventEnvelope(Schema):
    """What every consumed event must carry; the rest of the payload is read by metrics.py."""

    class Meta:
        unknown = INCLUDE

    event_id = fields.UUID(required=True)
    org_id = fields.UUID(required=True)
