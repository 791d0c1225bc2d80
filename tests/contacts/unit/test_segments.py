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
    assert [p for p, _ in segments.flatten(rules)] == ["rules.0", "rules.1.0", "rules.1.1", "rules.2"]


@pytest.mark.parametrize("rules, where", [
    ({"rules": []}, "rules.rules"),
    ({"match": "some", "rules": [{"type": "reachable", "channel": "email"}]}, "rules.match"),
    ({"rules": [{"type": "field", "field": "password", "op": "equals"}]}, "rules.rules.0"),
    ({"rules": [{"type": "reachable", "channel": "fax"}]}, "rules.rules.0"),
    ({"rules": [{"type": "has_tag"}]}, "rules.rules.0"),
])
def test_bad_rules_name_the_rule(rules, where):
    with pytest.raises(Invalid) as err:
        segments.validate(rules)
    assert where in err.value.errors


def test_rules_read_as_sentences():
    assert segments.describe({"type": "has_tag", "tag_id": "x", "tag_title": "VIP"}) == "has tag VIP"
    assert segments.describe({"type": "custom", "key": "plan", "op": "equals", "value": "gold"}) == "custom plan equals gold"
    assert segments.describe({"type": "reachable", "channel": "email"}) == "reachable by email"
