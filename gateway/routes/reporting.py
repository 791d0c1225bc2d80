"""Analytics: counts served by the reporting service, built only from events."""
from flask import Blueprint, g
from marshmallow import Schema, fields

from gateway.api import endpoint
from gateway.rpc import rpc
from services.reporting.metrics import METRICS
from services.reporting.schemas import AnalyticsQuery, as_filters

bp = Blueprint("reporting", __name__, url_prefix="/api/v1")

_COUNTS = {m: fields.Integer() for m in METRICS}
MetricCounts = Schema.from_dict(_COUNTS, name="MetricCounts")
ChannelCounts = Schema.from_dict(dict(_COUNTS, channel=fields.String()), name="ChannelCounts")
CampaignCounts = Schema.from_dict(dict(_COUNTS, campaign_id=fields.UUID(allow_none=True)),
                                  name="CampaignCounts")
DayCounts = Schema.from_dict(dict(_COUNTS, day=fields.Date()), name="DayCounts")


class AnalyticsFilters(Schema):
    from_ = fields.Date(data_key="from", allow_none=True)
    to = fields.Date(allow_none=True)
    channel = fields.String(allow_none=True)
    campaign_id = fields.UUID(allow_none=True)
    run_id = fields.UUID(allow_none=True)
    include_test = fields.Boolean()


class Analytics(Schema):
    totals = fields.Nested(MetricCounts)
    by_channel = fields.List(fields.Nested(ChannelCounts))
    by_campaign = fields.List(fields.Nested(CampaignCounts))
    by_day = fields.List(fields.Nested(DayCounts))
    filters = fields.Nested(AnalyticsFilters)


@bp.get("/analytics")
@endpoint("read", query=AnalyticsQuery(), response=Analytics(), tags=["analytics"],
          summary="Counts (targeted ... replied) per channel, campaign and UTC day; test runs "
                  "excluded unless include_test=true")
def analytics(query):
    return rpc.reporting.analytics(g.ctx, {k: _json(v) for k, v in as_filters(query).items()})


def _json(value):
    """Dates and UUIDs travel over RPC as strings; the service validates them again."""
    if value is None or isinstance(value, bool):
        return value
    return value.isoformat() if hasattr(value, "isoformat") else str(value)
