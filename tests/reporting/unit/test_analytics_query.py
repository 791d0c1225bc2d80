"""The analytics filters: UTC days, known channels, ids; test runs left out by default."""
import datetime

import pytest

from services.common.errors import Invalid
from services.common.schemas import load
from services.reporting.schemas import AnalyticsQuery, as_filters


def test_no_filters_means_everything_but_test_runs():
    assert as_filters(load(AnalyticsQuery(), {})) == {
        "from": None, "to": None, "channel": None, "campaign_id": None, "run_id": None,
        "include_test": False}


def test_a_date_range_is_read_as_days():
    filters = as_filters(load(AnalyticsQuery(), {"from": "2026-11-01", "to": "2026-11-30"}))
    assert (filters["from"], filters["to"]) == (datetime.date(2026, 11, 1), datetime.date(2026, 11, 30))


@pytest.mark.parametrize("query, field", [
    ({"from": "30/11/2026"}, "from"),
    ({"to": "2026-02-30"}, "to"),
    ({"from": "2026-12-02", "to": "2026-12-01"}, "to"),
    ({"channel": "fax"}, "channel"),
    ({"campaign_id": "spring"}, "campaign_id"),
    ({"include_test": "maybe"}, "include_test"),
])
def test_bad_filters_name_their_field(query, field):
    with pytest.raises(Invalid) as err:
        load(AnalyticsQuery(), query)
    assert list(err.value.errors) == [field]
