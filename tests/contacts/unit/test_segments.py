"""Segment rules compile to one SQL condition; bad rules are refused with the rule's path."""
import pytest

from services.common.errors import Invalid
from services.contacts import segments


def test_all_and_any_rules_compile_with_parameters():
    rules = {"match": "all", "rules": [
        {"type": "has_tag", "tag_id": "7f1c0a3e-0000-4000-8000-000000000001"},
        {"match": "any", "rules": [{"type": "field", "field": "email", "op": "contains", "value": "50%"},
                                   {"type": "custom", "key": "budget", "op": "gte", "value": 1000}]},
        {"type": "reachable", "channel": "sms"}]}
    segments.validate(rules)
    sql, params = segments.compile_rules(rules)
    assert sql.count(" AND ") >= 2 and " OR " in sql
    assert params == ["7f1c0a3e-0000-4000-8000-000000000001", "%50\\%%", "budget", "budget", 1000.0]
    assert [p for p, _ in segments.flatten(rules)] == ["rules.rules.0", "rules.rules.1.rules.0",
                                                      "rules.rules.1.rules.1", "rules.rules.2"]


@pytest.mark.parametrize("rules, where", [
    ({"rules": []}, "rules.rules"),
    ({"match": "some", "rules": [{"type": "reachable", "channel": "email"}]}, "rules.match"),
    ({"rules": [{"type": "field", "field": "password", "op": "equals"}]}, "rules.rules.0.field"),
    ({"rules": [{"type": "reachable", "channel": "fax"}]}, "rules.rules.0.channel"),
    ({"rules": [{"type": "has_tag"}]}, "rules.rules.0.tag_id"),
    # Values are checked when the segment is saved, not when PostgreSQL first sees them.
    ({"rules": [{"type": "created", "from": "yesterday", "to": "2026-13-45"}]}, "rules.rules.0.from"),
    ({"rules": [{"type": "created", "from": "2026-09-01", "to": "2026-13-45"}]}, "rules.rules.0.to"),
    ({"rules": [{"type": "updated", "from": "soon"}]}, "rules.rules.0.from"),
    ({"rules": [{"type": "custom", "key": "a", "op": "gte", "value": {"a": 1}}]}, "rules.rules.0.value"),
    ({"rules": [{"type": "custom", "key": "a", "op": "gt", "value": "abc"}]}, "rules.rules.0.value"),
    ({"rules": [{"type": "custom", "key": "a", "op": "equals", "value": [1, 2]}]}, "rules.rules.0.value"),
    ({"rules": [{"type": "field", "field": "email", "op": "contains", "value": {"x": 1}}]},
     "rules.rules.0.value"),
    ({"rules": [{"type": "has_tag", "tag_id": "not-a-uuid"}]}, "rules.rules.0.tag_id"),
    ({"rules": [{"type": "reachable", "channel": "email"},
                {"match": "any", "rules": [{"type": "created", "to": "next week"}]}]},
     "rules.rules.1.rules.0.to"),
])
def test_bad_rules_name_the_rule(rules, where):
    with pytest.raises(Invalid) as err:
        segments.validate(rules)
    assert where in err.value.errors


def test_rules_read_as_sentences():
    assert segments.describe({"type": "has_tag", "tag_id": "x", "tag_title": "VIP"}) == "has tag VIP"
    assert segments.describe({"type": "custom", "key": "plan", "op": "equals", "value": "gold"}) == "custom plan equals gold"
    assert segments.describe({"type": "reachable", "channel": "email"}) == "reachable by email"


def test_comparisons_take_numbers_or_iso_dates_and_date_ranges_take_iso_dates():
    rules = {"rules": [
        {"type": "custom", "key": "Annual budget (USD)", "op": "gte", "value": 20000},
        {"type": "custom", "key": "budget", "op": "lt", "value": "1500.5"},
        {"type": "custom", "key": "renewal", "op": "lte", "value": "2026-12-31"},
        {"type": "created", "from": "2026-09-01T00:00:00Z", "to": "2026-12-01"},
        {"type": "updated", "from": "2026-09-01T00:00:00+02:00"},
        {"type": "field", "field": "email", "op": "exists"}]}
    assert segments.validate(rules) is rules
