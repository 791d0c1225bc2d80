"""Importing contacts: a column mapping turns each record into a candidate contact (normalised
e-mail, E.164 phone, IANA zone, tags, unsubscribes, custom data); candidates are deduplicated on
e-mail, else phone, inside the file and against existing contacts; each record ends with one
outcome (created, updated, unchanged, merged, rejected) and its warnings.

This module turns one record into a candidate (CPU only, runs in any process); bulk.py stages the
candidates and merges them set-based (the dedupe and outcome rules are documented there and in
docs/contacts.md). It never imports nameko."""
import json

from services.common.errors import Invalid
from services.contacts import normalize

FIELDS = ("email", "phone", "name", "first_name", "last_name", "timezone", "country", "tags")
SCALARS = ("name", "first_name", "last_name", "email", "phone", "phone_extension", "timezone")
# Column names that suggest a mapping (lower-cased header -> field).
HINTS = {
    "email": ("email", "e-mail", "email address", "e-mail address", "e-mail 1 - value", "mail"),
    "phone": ("phone", "mobile", "phone number", "mobile phone", "cell", "phone 1 - value",
              "telephone", "tel"),
    "name": ("name", "full name", "contact name"),
    "first_name": ("first name", "firstname", "given name", "first_name"),
    "last_name": ("last name", "lastname", "surname", "family name", "last_name"),
    "timezone": ("timezone", "time zone", "preferred time zone", "tz"),
    "country": ("country", "cc", "mailing country", "country code", "address 1 - country"),
    "tags": ("tags", "labels", "tag"),
}
UNSUB_HINTS = {
    "email": ("unsubscribed from all email", "email opt out", "unsubscribed", "email opt-out"),
    "sms": ("sms opt-out", "sms opt out", "sms unsubscribed"),
    "phone": ("do not call", "dnc"),
}


def suggest_mapping(columns):
    lower = {c.lower(): c for c in columns if c}
    mapping = {}
    for field, hints in HINTS.items():
        for hint in hints:
            if hint in lower:
                mapping[field] = lower[hint]
                break
    if "first_name" in mapping and "last_name" in mapping:
        mapping.pop("name", None)
    unsub = {}
    for channel, hints in UNSUB_HINTS.items():
        for hint in hints:
            if hint in lower:
                unsub[channel] = lower[hint]
                break
    if unsub:
        mapping["unsubscribe"] = unsub
    mapping["custom"] = "rest"
    return mapping


def check_mapping(mapping, columns):
    """Invalid (per field) unless the mapping names existing columns and an e-mail or phone."""
    errors = {}
    present = set(columns)
    if not mapping.get("email") and not mapping.get("phone"):
        errors["mapping"] = ["map an e-mail or a phone column: without one no record can be imported"]
    for field in FIELDS:
        cols = mapping.get(field)
        if not cols:
            continue
        for col in (cols if isinstance(cols, list) else [cols]):
            if col not in present:
                errors.setdefault(f"mapping.{field}", []).append(f"no column {col!r} in the file")
    for channel, col in (mapping.get("unsubscribe") or {}).items():
        if channel not in normalize.CHANNELS:
            errors.setdefault("mapping.unsubscribe", []).append(f"unknown channel {channel!r}")
        elif col and col not in present:
            errors.setdefault("mapping.unsubscribe", []).append(f"no column {col!r} in the file")
    mapped = mapped_columns(dict(mapping, ignore=[]))
    for col in mapping.get("ignore") or []:
        if col in mapped:
            errors.setdefault("mapping.ignore", []).append(
                f"{col!r} is mapped to a field; it cannot be ignored too")
    for key in ("custom", "ignore"):
        cols = mapping.get(key)
        if isinstance(cols, list):
            for col in cols:
                if col not in present:
                    errors.setdefault(f"mapping.{key}", []).append(f"no column {col!r} in the file")
    if errors:
        raise Invalid("the column mapping does not fit the file", errors=errors)


def mapped_columns(mapping):
    used = set()
    for field in FIELDS:
        cols = mapping.get(field)
        if cols:
            used.update(cols if isinstance(cols, list) else [cols])
    used.update(c for c in (mapping.get("unsubscribe") or {}).values() if c)
    used.update(mapping.get("ignore") or [])
    return used


class Rejection:
    __slots__ = ("record", "reason", "warnings")

    def __init__(self, record, reason, warnings):
        self.record, self.reason, self.warnings = record, reason, warnings


_encode_string = json.encoder.encode_basestring  # a JSON string (non-ASCII kept), in C
# Compact JSON text, non-ASCII kept (what the staging table's jsonb columns are COPYed from).
to_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class Plan:
    """A mapping prepared once per import against the file's columns: the position of the cell
    that feeds each field (None: not mapped), and the custom-data columns with their keys
    already written as JSON."""

    def __init__(self, mapping, defaults, columns):
        at = {c: i for i, c in enumerate(columns)}

        def pos(name):
            return at.get(name) if isinstance(name, str) and name else None

        self.email, self.phone = pos(mapping.get("email")), pos(mapping.get("phone"))
        self.name, self.first, self.last = (pos(mapping.get("name")), pos(mapping.get("first_name")),
                                            pos(mapping.get("last_name")))
        self.timezone, self.country = pos(mapping.get("timezone")), pos(mapping.get("country"))
        tags = mapping.get("tags")
        self.tags = [i for i in map(pos, [tags] if isinstance(tags, str) else list(tags or []))
                     if i is not None]
        self.add_tags = list(mapping.get("add_tags") or [])
        self.unsub = [(ch, pos(col)) for ch, col in (mapping.get("unsubscribe") or {}).items()
                      if pos(col) is not None]
        self.region = defaults.get("default_country") or "US"
        custom = mapping.get("custom", "rest")
        if custom == "rest":
            used = mapped_columns(mapping)
            names = [c for c in columns if c and c not in used]
        else:
            names = [c for c in (custom if isinstance(custom, list) else []) if pos(c) is not None]
        self.custom = [(at[c], _encode_string(c) + ":") for c in names]
        self.width = len(columns)
        self.names = [i for i in (self.name, self.first, self.last) if i is not None]


def _array(items):
    """A PostgreSQL text[] literal (CSV-quoted later by the csv writer)."""
    return "{" + ",".join('"' + t.replace("\\", "\\\\").replace('"', '\\"') + '"'
                          for t in items) + "}"


def staged(number, values, plan, contact_id):
    """One record (its cells, at least one per column) -> the staged row (number, `contact_id`:
    the id its contact gets if it is new, e-mail, phone, extension, name, first name, last name,
    zone, custom JSON, tags text[], unsubscribe channels text[], warnings JSON; None where
    empty), or a Rejection. CPU only."""
    warn = []
    e = normalize.email(values[plan.email]) if plan.email is not None else normalize.EMPTY
    if e.warning:
        warn.append({"field": "email", "message": e.warning})
    region = plan.region
    if plan.country is not None:
        raw_country = values[plan.country]
        found = normalize.country(raw_country)
        if found:
            region = found
        elif raw_country.strip():
            warn.append({"field": "country", "message": f"unknown country {raw_country.strip()!r}: "
                                                        f"using {region}"})
    p = normalize.phone(values[plan.phone], region) if plan.phone is not None else normalize.EMPTY
    if p.warning:
        warn.append({"field": "phone", "message": p.warning})
    email = e.value
    if not email and not p.value:
        reason = e.warning if e.warning else "no e-mail and no phone"
        if e.warning and p.warning:
            reason = f"{e.warning}; {p.warning}"
        elif not e.warning and p.warning:
            reason = f"no e-mail and {p.warning}"
        return Rejection(number, reason, warn)
    custom = []
    if p.value:
        phone, extension = p.value
        if p.extra:
            custom.append('"other phones":' + _encode_string(" ::: ".join(p.extra)))
    else:
        phone = extension = None
    for i in plan.names:
        if "\n" in values[i] or "\r" in values[i]:
            warn.append({"field": "name", "message": "the name's cell spans several lines (joined"
                         " into one): a quote left open in the file makes one cell of several"
                         " records"})
            break
    if len(values) > plan.width:
        extra = sum(1 for v in values[plan.width:] if v.strip())
        if extra:
            warn.append({"field": "record", "message": f"{extra} cell(s) past the header's last"
                                                       " column: ignored"})
    name, first, last = normalize.full_name(
        values[plan.first] if plan.first is not None else None,
        values[plan.last] if plan.last is not None else None,
        values[plan.name] if plan.name is not None else None)
    zone = None
    if plan.timezone is not None:
        tz = normalize.timezone(values[plan.timezone])
        if tz.warning:
            warn.append({"field": "timezone", "message": tz.warning})
        zone = tz.value
    tags = None
    if plan.tags or plan.add_tags:
        tags, cut, left_out = [], 0, 0
        for cell in plan.tags:
            for t in normalize.tags(values[cell]):
                title = t[:normalize.TAG_CHARS].rstrip()
                if title in tags:
                    continue
                if len(tags) >= normalize.TAGS_A_CONTACT:
                    left_out += 1
                    continue
                cut += title != t
                tags.append(title)
        if cut:
            warn.append({"field": "tags", "message": f"{cut} tag(s) longer than"
                                                     f" {normalize.TAG_CHARS} characters cut to"
                                                     " that length"})
        if left_out:
            warn.append({"field": "tags", "message": f"{left_out} more tag(s) left out: at most"
                                                     f" {normalize.TAGS_A_CONTACT} a contact"})
        for t in plan.add_tags:
            if t not in tags:
                tags.append(t)
    unsub = None
    if plan.unsub:
        unsub = sorted({channel for channel, col in plan.unsub if normalize.flag(values[col])})
    for col, key in plan.custom:
        value = values[col]
        if value:
            value = value.strip()
            if value:
                custom.append(key + _encode_string(value))
    # jsonb keeps the last of a repeated key: a column named "other phones" wins, as in a dict.
    return (number, contact_id, email, phone, extension, name, first, last, zone,
            "{" + ",".join(custom) + "}" if custom else None,
            _array(tags) if tags else None, _array(unsub) if unsub else None,
            to_json(warn) if warn else None)
