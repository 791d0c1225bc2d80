"""Segments are saved rules. A rule set is {"match": "all"|"any", "rules": [...]} where each rule
is one of (nested rule sets allowed):

  {"type": "has_tag", "tag_id": ...} / {"type": "lacks_tag", "tag_id": ...}
  {"type": "field", "field": "email", "op": "equals|contains|exists|not_exists", "value": ...}
  {"type": "custom", "key": "plan", "op": "equals|contains|exists|not_exists|gt|gte|lt|lte", "value": ...}
  {"type": "created" | "updated", "from": iso, "to": iso}
  {"type": "reachable", "channel": "email|sms|phone"}

compile_rules turns them into one SQL condition over `contacts c` with parameters, so count,
preview, resolve and "why" all use the same definition. No nameko here."""
import math

from services.common.errors import Invalid
from services.contacts.store import opted_out_sql

FIELDS = ("name", "first_name", "last_name", "email", "phone", "timezone", "active")
FIELD_OPS = ("equals", "not_equals", "contains", "exists", "not_exists")
CUSTOM_OPS = FIELD_OPS + ("gt", "gte", "lt", "lte")
CHANNELS = ("email", "sms", "phone")
MAX_DEPTH = 4
MAX_RULES = 100  # leaf rules in one segment (PostgreSQL: 1,664 columns in the explanation)


def reachable_sql(channel):
    """A contact is reachable on a channel when active, has the address and has not opted out."""
    column = "email" if channel == "email" else "phone"
    sql = (f"(c.active AND c.{column} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM unsubscribes u"
           f" WHERE u.org_id = c.org_id AND {opted_out_sql(channel, 'c.' + column)})")
    if channel == "email":
        # A hard bounce made the address undeliverable.
        sql += (" AND NOT EXISTS (SELECT 1 FROM undeliverable b WHERE b.org_id = c.org_id"
                " AND b.channel = 'email' AND b.identifier = c.email)")
    return sql + ")"


SCALAR_OPS = ("equals", "not_equals", "contains")
COMPARISONS = ("gt", "gte", "lt", "lte")


def _bad(path, message):
    return Invalid("invalid segment rules", errors={path: [message]})


def _scalar(value):
    return isinstance(value, (str, int, float, bool)) and not (isinstance(value, str) and not value.strip())


def _number(value):
    """A finite number a float holds (a 400-digit integer does not: it would overflow)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return False
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (ValueError, OverflowError):
        return False
    return math.isfinite(number)


def iso_datetime(value):
    """The datetime an ISO 8601 date or date-time string names, else None."""
    import datetime
    if not isinstance(value, str) or not value.strip():
        return None
    from services.common.schemas import utc
    try:
        return utc(datetime.datetime.fromisoformat(value.strip()))
    except ValueError:
        return None


def validate(rules, depth=0, path="rules"):
    """Raises Invalid naming the bad rule (its path, e.g. `rules.rules.0.from`) when a rule could
    not be evaluated; returns the rules as given. Every value is checked, so a saved segment
    always compiles into SQL PostgreSQL accepts."""
    if not isinstance(rules, dict):
        raise _bad(path, "must be an object")
    if depth > MAX_DEPTH:
        raise _bad(path, "nested too deeply")
    match = rules.get("match", "all")
    if match not in ("all", "any"):
        raise _bad(f"{path}.match", "must be all or any")
    items = rules.get("rules")
    if not isinstance(items, list) or not items:
        raise _bad(f"{path}.rules", "give at least one rule")
    if depth == 0 and _leaves(rules) > MAX_RULES:
        raise _bad(path, f"at most {MAX_RULES} rules in a segment")
    for i, rule in enumerate(items):
        where = f"{path}.rules.{i}"
        if not isinstance(rule, dict):
            raise _bad(where, "must be an object")
        if "rules" in rule:
            validate(rule, depth + 1, where)
            continue
        _validate_leaf(rule, where)
    return rules


def _leaves(rules):
    """How many leaf rules (bounded walk: stops counting past MAX_RULES)."""
    count, stack = 0, [rules]
    while stack and count <= MAX_RULES:
        node = stack.pop()
        items = node.get("rules") if isinstance(node, dict) else None
        if isinstance(items, list):
            stack.extend(items)
        else:
            count += 1
    return count


def _validate_leaf(rule, where):
    kind = rule.get("type")
    if kind in ("has_tag", "lacks_tag"):
        import uuid
        try:
            uuid.UUID(str(rule.get("tag_id") or ""))
        except ValueError:
            raise _bad(f"{where}.tag_id", "a tag id (UUID) is required")
    elif kind in ("field", "custom"):
        if kind == "field" and rule.get("field") not in FIELDS:
            raise _bad(f"{where}.field", f"one of {', '.join(FIELDS)}")
        if kind == "custom" and not (isinstance(rule.get("key"), str) and rule["key"].strip()):
            raise _bad(f"{where}.key", "the custom data key is required")
        ops = FIELD_OPS if kind == "field" else CUSTOM_OPS
        op = rule.get("op")
        if op not in ops:
            raise _bad(f"{where}.op", f"one of {', '.join(ops)}")
        value = rule.get("value")
        if kind == "field" and rule["field"] == "active" and op in SCALAR_OPS[:2] \
                and str(value).lower() not in ("true", "false"):
            raise _bad(f"{where}.value", "active is true or false")
        if op in SCALAR_OPS and not _scalar(value):
            raise _bad(f"{where}.value", f"{op} needs a text, number or true/false value")
        if op in COMPARISONS and not (_number(value) or iso_datetime(value)):
            raise _bad(f"{where}.value", f"{op} needs a number or an ISO date")
    elif kind in ("created", "updated"):
        given = [k for k in ("from", "to") if rule.get(k) not in (None, "")]
        if not given:
            raise _bad(where, "give from and/or to")
        for k in given:
            if iso_datetime(rule[k]) is None:
                raise _bad(f"{where}.{k}", "an ISO 8601 date or date-time, e.g. 2026-09-01T00:00:00Z")
        if len(given) == 2 and iso_datetime(rule["from"]) >= iso_datetime(rule["to"]):
            raise _bad(f"{where}.to", "must be after from")
    elif kind == "reachable":
        if rule.get("channel") not in CHANNELS:
            raise _bad(f"{where}.channel", "email, sms or phone")
    else:
        raise _bad(f"{where}.type", f"unknown rule type {kind!r}")


def compile_rule(rule, after=None):
    """(sql, params) for one rule (not a group). `after` (a keyset page's start) is repeated
    inside tag rules: PostgreSQL does not carry `c.id > x` across the join to contact_tags, and
    without it every page would re-read the tag's links from the first one."""
    kind = rule["type"]
    if kind in ("has_tag", "lacks_tag"):
        sql = ("EXISTS (SELECT 1 FROM contact_tags ct WHERE ct.contact_id = c.id"
               " AND ct.tag_id = %s::uuid")
        params = [str(rule["tag_id"])]
        if after:
            sql += " AND ct.contact_id > %s::uuid"
            params.append(str(after))
        sql += ")"
        return (sql if kind == "has_tag" else f"NOT {sql}"), params
    if kind == "field":
        field, op, value = rule["field"], rule["op"], rule.get("value")
        col = f"c.{field}"
        if field == "active":
            if op in ("exists", "not_exists"):
                return "TRUE", []
            wanted = str(value).lower() in ("true", "1", "yes")
            return (f"{col} = %s" if op == "equals" else f"{col} <> %s"), [wanted]
        if op == "exists":
            return f"{col} IS NOT NULL AND {col} <> ''", []
        if op == "not_exists":
            return f"({col} IS NULL OR {col} = '')", []
        if op == "equals":
            # Stored values are canonical (lower-case e-mail, E.164, IANA zone): compare the
            # canonical form exactly, which the planner estimates well (lower(col) it does not).
            if field in ("email", "phone", "timezone"):
                return f"{col} = %s", [_canonical(field, value)]
            return f"lower({col}) = lower(%s)", [str(value)]
        if op == "not_equals":
            return f"({col} IS NULL OR lower({col}) <> lower(%s))", [str(value)]
        return f"{col} ILIKE %s", [f"%{_like(str(value))}%"]
    if kind == "custom":
        key, op, value = str(rule["key"]), rule["op"], rule.get("value")
        if op == "exists":
            return "c.custom ? %s", [key]
        if op == "not_exists":
            return "NOT (c.custom ? %s)", [key]
        if op == "equals":
            # jsonb containment uses the GIN index (jsonb_path_ops).
            import json
            return "c.custom @> %s::jsonb", [json.dumps({key: value})]
        if op == "not_equals":
            return "(c.custom ->> %s) IS DISTINCT FROM %s", [key, str(value)]
        if op == "contains":
            return "(c.custom ->> %s) ILIKE %s", [key, f"%{_like(str(value))}%"]
        sym = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
        # Numeric when both sides are numbers, else text comparison.
        try:
            number = float(value)
            return (f"(CASE WHEN (c.custom ->> %s) ~ '^-?[0-9]+(\\.[0-9]+)?$'"
                    f" THEN (c.custom ->> %s)::numeric {sym} %s ELSE FALSE END)"), [key, key, number]
        except (TypeError, ValueError, OverflowError):
            return f"(c.custom ->> %s) {sym} %s", [key, str(value)]
    if kind in ("created", "updated"):
        col = "c.created_at" if kind == "created" else "c.updated_at"
        parts, params = [], []
        # In UTC: PostgreSQL refuses offsets past 15:59 that ISO 8601 allows.
        for key, sym in (("from", ">="), ("to", "<")):
            if rule.get(key):
                parts.append(f"{col} {sym} %s::timestamptz")
                params.append(iso_datetime(rule[key]) or rule[key])
        return " AND ".join(parts), params
    if kind == "reachable":
        return reachable_sql(rule["channel"]), []
    raise Invalid("invalid segment rules", errors={"rules": [f"unknown rule type {kind!r}"]})


def _canonical(field, value):
    from services.contacts import normalize
    raw = "" if value is None else str(value)
    if field == "email":
        return normalize.email(raw).value or raw.strip().lower()
    if field == "phone":
        found = normalize.phone(raw).value
        return found[0] if found else raw.strip()
    return normalize.timezone(raw).value or raw.strip()


def compile_rules(rules, after=None):
    """(sql, params) for a whole rule set."""
    joiner = " AND " if rules.get("match", "all") == "all" else " OR "
    parts, params = [], []
    for rule in rules["rules"]:
        sql, p = compile_rules(rule, after) if "rules" in rule else compile_rule(rule, after)
        parts.append(f"({sql})")
        params.extend(p)
    return joiner.join(parts), params


def flatten(rules, path="rules"):
    """[(path, rule)] for every leaf rule, to explain a match rule by rule."""
    out = []
    for i, rule in enumerate(rules["rules"]):
        p = f"{path}.rules.{i}"  # the paths validate() names errors by
        if "rules" in rule:
            out.extend(flatten(rule, p))
        else:
            out.append((p, rule))
    return out


def describe(rule):
    kind = rule["type"]
    if kind == "has_tag":
        return f"has tag {rule.get('tag_title') or rule['tag_id']}"
    if kind == "lacks_tag":
        return f"lacks tag {rule.get('tag_title') or rule['tag_id']}"
    if kind == "field":
        return f"{rule['field']} {rule['op'].replace('_', ' ')} {rule.get('value', '')}".strip()
    if kind == "custom":
        return f"custom {rule['key']} {rule['op'].replace('_', ' ')} {rule.get('value', '')}".strip()
    if kind in ("created", "updated"):
        return f"{kind} between {rule.get('from') or '-'} and {rule.get('to') or '-'}"
    return f"reachable by {rule['channel']}"


def _like(value):
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
