"""Importing contacts: a column mapping turns each record into a candidate contact (normalised
e-mail, E.164 phone, IANA zone, tags, unsubscribes, custom data); candidates are deduplicated on
e-mail, else phone, inside the file and against existing contacts; each record ends with one
outcome (created, updated, unchanged, merged, rejected) and its warnings.

This module turns one record into a candidate (CPU only, runs in any process); bulk.py stages the
candidates and merges them set-based (the dedupe and outcome rules are documented there and in
docs/contacts.md). It never imports nameko."""
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


class Candidate:
    """One record turned into contact values (what the import wants to write)."""

    __slots__ = ("record", "values", "custom", "tags", "unsubscribe", "warnings")

    def __init__(self, record):
        self.record = record
        self.values = {}
        self.custom = {}
        self.tags = []
        self.unsubscribe = set()
        self.warnings = []


class Rejection:
    __slots__ = ("record", "reason", "warnings")

    def __init__(self, record, reason, warnings):
        self.record, self.reason, self.warnings = record, reason, warnings


class Plan:
    """A mapping prepared once per import: which column feeds which field."""

    def __init__(self, mapping, defaults):
        self.email = mapping.get("email")
        self.phone = mapping.get("phone")
        self.name, self.first, self.last = (mapping.get("name"), mapping.get("first_name"),
                                            mapping.get("last_name"))
        self.timezone = mapping.get("timezone")
        self.country = mapping.get("country")
        tags = mapping.get("tags")
        self.tags = [tags] if isinstance(tags, str) else list(tags or [])
        self.add_tags = list(mapping.get("add_tags") or [])
        self.unsub = [(ch, col) for ch, col in (mapping.get("unsubscribe") or {}).items() if col]
        self.region = defaults.get("default_country") or "US"
        custom = mapping.get("custom", "rest")
        self.custom_rest = custom == "rest"
        self.custom_cols = custom if isinstance(custom, list) else []
        self.used = mapped_columns(mapping)


def candidate(record, row, plan):
    """Candidate or Rejection for one record."""
    c = Candidate(record)
    warn = c.warnings
    get = row.get
    e = normalize.email(get(plan.email, "")) if plan.email else normalize.Result()
    if e.warning:
        warn.append({"field": "email", "message": e.warning})
    region = plan.region
    if plan.country:
        raw_country = get(plan.country, "")
        found = normalize.country(raw_country)
        if found:
            region = found
        elif raw_country.strip():
            warn.append({"field": "country", "message": f"unknown country {raw_country.strip()!r}: "
                                                        f"using {region}"})
    p = normalize.phone(get(plan.phone, ""), region) if plan.phone else normalize.Result()
    if p.warning:
        warn.append({"field": "phone", "message": p.warning})
    if not e.value and not p.value:
        reason = e.warning if e.warning else "no e-mail and no phone"
        if e.warning and p.warning:
            reason = f"{e.warning}; {p.warning}"
        elif not e.warning and p.warning:
            reason = f"no e-mail and {p.warning}"
        return Rejection(record, reason, warn)
    v = c.values
    v["email"] = e.value
    if p.value:
        v["phone"], v["phone_extension"] = p.value
        if p.extra:
            c.custom["other phones"] = " ::: ".join(p.extra)
    v["name"], v["first_name"], v["last_name"] = normalize.full_name(
        get(plan.first, "") if plan.first else None, get(plan.last, "") if plan.last else None,
        get(plan.name, "") if plan.name else None)
    if plan.timezone:
        tz = normalize.timezone(get(plan.timezone, ""))
        if tz.warning:
            warn.append({"field": "timezone", "message": tz.warning})
        v["timezone"] = tz.value
    cut, left_out = 0, 0
    for cell in plan.tags:
        for t in normalize.tags(get(cell, "")):
            title = t[:normalize.TAG_CHARS].rstrip()
            if title in c.tags:
                continue
            if len(c.tags) >= normalize.TAGS_A_CONTACT:
                left_out += 1
                continue
            cut += title != t
            c.tags.append(title)
    if cut:
        warn.append({"field": "tags", "message": f"{cut} tag(s) longer than {normalize.TAG_CHARS}"
                                                 " characters cut to that length"})
    if left_out:
        warn.append({"field": "tags", "message": f"{left_out} more tag(s) left out: at most"
                                                 f" {normalize.TAGS_A_CONTACT} a contact"})
    for t in plan.add_tags:
        if t not in c.tags:
            c.tags.append(t)
    for channel, col in plan.unsub:
        if normalize.flag(get(col, "")):
            c.unsubscribe.add(channel)
    if plan.custom_rest:
        used = plan.used
        custom = c.custom
        for col, value in row.items():
            if value and col not in used:
                value = value.strip()
                if value:
                    custom[col] = value
    else:
        for col in plan.custom_cols:
            value = get(col, "").strip()
            if value:
                c.custom[col] = value
    return c
