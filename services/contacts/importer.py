"""Importing contacts: a column mapping turns each record into a candidate contact (normalised
e-mail, E.164 phone, IANA zone, tags, unsubscribes, custom data); candidates are deduplicated on
e-mail, else phone, inside the file and against existing contacts; each record ends with one
outcome (created, updated, unchanged, merged, rejected) and its warnings.

Records are processed in batches so memory stays flat: only the dedupe keys of the whole file are
kept. The store does the SQL (see store.py); this module never imports nameko."""
from services.common.errors import Invalid
from services.contacts import normalize

BATCH = 2000
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
    custom = mapping.get("custom", "rest")
    if isinstance(custom, list):
        for col in custom:
            if col not in present:
                errors.setdefault("mapping.custom", []).append(f"no column {col!r} in the file")
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

    def key(self):
        return self.values.get("email") or self.values.get("phone")

    def absorb(self, other):
        """Fill-only merge of a later record of the same person: values only one has are kept,
        the first record wins where both have one."""
        for field in SCALARS:
            if not self.values.get(field) and other.values.get(field):
                self.values[field] = other.values[field]
        for k, v in other.custom.items():
            self.custom.setdefault(k, v)
        for t in other.tags:
            if t not in self.tags:
                self.tags.append(t)
        self.unsubscribe |= other.unsubscribe


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
    for cell in plan.tags:
        for t in normalize.tags(get(cell, "")):
            if t not in c.tags:
                c.tags.append(t)
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


class Outcome:
    __slots__ = ("record", "outcome", "contact_id", "reason", "merged_into", "warnings")

    def __init__(self, record, outcome, contact_id=None, reason=None, merged_into=None,
                 warnings=None):
        self.record, self.outcome, self.contact_id = record, outcome, contact_id
        self.reason, self.merged_into, self.warnings = reason, merged_into, warnings or []


class Run:
    """One import: feed it records, it writes through the store batch by batch and keeps counts."""

    def __init__(self, store, mapping, defaults, on_progress=None, spawn=None):
        self.store = store
        self.mapping = mapping
        self.plan = Plan(mapping, defaults)
        self.on_progress = on_progress
        # spawn(fn, arg) -> object with .wait(): lets the service overlap the database work of
        # one batch with reading and normalising the next (green threads); inline by default.
        self.spawn = spawn
        self.first_by_email = {}   # dedupe keys of this file -> first record number
        self.first_by_phone = {}
        self.contact_of_record = {}  # first record -> contact id (created or matched)
        self.created_here = set()    # contact ids this import created
        self.counts = {"records": 0, "created": 0, "updated": 0, "unchanged": 0, "merged": 0,
                       "rejected": 0, "warnings": 0}
        self.rows_done = 0

    def feed(self, records):
        batch, pending = [], None
        for number, row in records:
            batch.append((number, row))
            if len(batch) >= BATCH:
                pending = self._step(batch, pending)
                batch = []
        if batch:
            pending = self._step(batch, pending)
        if pending is not None:
            pending.wait()
        return self.counts

    def _step(self, batch, pending):
        prepared = self._prepare(batch)
        if pending is not None:
            pending.wait()
        if self.spawn is None:
            self._apply(prepared)
            return None
        return self.spawn(self._apply, prepared)

    def _first_record(self, c):
        email, phone = c.values.get("email"), c.values.get("phone")
        if email:
            return self.first_by_email.get(email)
        return self.first_by_phone.get(phone) if phone else None

    def _remember(self, c):
        if c.values.get("email"):
            self.first_by_email.setdefault(c.values["email"], c.record)
        if c.values.get("phone"):
            self.first_by_phone.setdefault(c.values["phone"], c.record)

    def _prepare(self, batch):
        """CPU only: normalise the batch and dedupe it against this file's earlier records."""
        outcomes = []
        firsts = {}      # first record number -> Candidate in this batch
        merged = []      # (Candidate, first record) merged into an earlier batch's contact
        for number, row in batch:
            c = candidate(number, row, self.plan)
            if isinstance(c, Rejection):
                outcomes.append(Outcome(number, "rejected", reason=c.reason, warnings=c.warnings))
                continue
            first = self._first_record(c)
            if first is None:
                self._remember(c)
                firsts[c.record] = c
            elif first in firsts:
                firsts[first].absorb(c)
                outcomes.append(Outcome(number, "merged", merged_into=first, warnings=c.warnings))
                # the merged record's warnings are its own; remember its keys too
                self._remember(c)
            else:
                merged.append((c, first))
                self._remember(c)
        return batch, outcomes, firsts, merged

    def _apply(self, prepared):
        """Database: match against existing contacts, write, record outcomes."""
        batch, outcomes, firsts, merged = prepared
        # Against what the database holds: by e-mail, else (phone-only) by phone.
        fresh = list(firsts.values())
        emails = [c.values["email"] for c in fresh if c.values.get("email")]
        phones = [c.values["phone"] for c in fresh if not c.values.get("email")]
        existing = self.store.match_contacts(emails, phones)
        inserts, updates = [], []
        tag_links = []    # (contact_id or Candidate, [titles])
        unsubs = []       # (channel, identifier)
        for c in fresh:
            key = ("e", c.values["email"]) if c.values.get("email") else ("p", c.values["phone"])
            row = existing.get(key)
            if row is None:
                inserts.append(c)
                continue
            self.contact_of_record[c.record] = row["id"]
            changed = _overwrite(row, c)
            new_tags = [t for t in c.tags if t.lower() not in row["tag_titles"]]
            new_unsubs = _new_unsubs(row, c)
            if changed:
                updates.append((row["id"], changed))
            if new_tags:
                tag_links.append((row["id"], new_tags))
            unsubs.extend(new_unsubs)
            status = "updated" if (changed or new_tags or new_unsubs) else "unchanged"
            outcomes.append(Outcome(c.record, status, contact_id=row["id"], warnings=c.warnings))
        created_ids = self.store.insert_contacts(inserts)
        for c, cid in zip(inserts, created_ids):
            self.contact_of_record[c.record] = cid
            self.created_here.add(cid)
            outcomes.append(Outcome(c.record, "created", contact_id=cid, warnings=c.warnings))
            if c.tags:
                tag_links.append((cid, c.tags))
            unsubs.extend(_unsub_pairs(c.values, c.unsubscribe))
        # Records whose first occurrence was written in an earlier batch: fill-only merge.
        if merged:
            ids = {self.contact_of_record[first] for _, first in merged
                   if first in self.contact_of_record}
            rows = self.store.contacts_by_id(list(ids))
            for c, first in merged:
                cid = self.contact_of_record.get(first)
                row = rows.get(cid)
                if row is None:
                    continue
                changed = _fill(row, c)
                if changed:
                    updates.append((cid, changed))
                    row.update(changed)
                new_tags = [t for t in c.tags if t.lower() not in row["tag_titles"]]
                if new_tags:
                    tag_links.append((cid, new_tags))
                    row["tag_titles"].update(t.lower() for t in new_tags)
                unsubs.extend(_new_unsubs(row, c))
                status = "merged" if cid in self.created_here else "updated"
                outcomes.append(Outcome(c.record, status, contact_id=cid, merged_into=first,
                                        warnings=c.warnings))
        for merged_outcome in outcomes:
            if merged_outcome.outcome == "merged" and merged_outcome.contact_id is None:
                merged_outcome.contact_id = self.contact_of_record.get(merged_outcome.merged_into)
        self.store.update_contacts(updates)
        self.store.link_tags(tag_links)
        self.store.unsubscribe_many(sorted(set(unsubs)), "import")
        self.store.record_outcomes(outcomes)
        for o in outcomes:
            self.counts[o.outcome] += 1
            self.counts["warnings"] += len(o.warnings)
        self.counts["records"] += len(batch)
        self.rows_done += len(batch)
        if self.on_progress:
            self.on_progress(self.rows_done, self.counts)


def _unsub_pairs(values, channels):
    pairs = []
    for channel in channels:
        identifier = values.get("email") if channel == "email" else values.get("phone")
        if identifier:
            pairs.append((channel, identifier))
    return pairs


def _new_unsubs(row, c):
    values = {"email": row.get("email") or c.values.get("email"),
              "phone": row.get("phone") or c.values.get("phone")}
    have = row.get("unsubscribed") or {}
    return [(ch, ident) for ch, ident in _unsub_pairs(values, c.unsubscribe) if not have.get(ch)]


def _overwrite(row, c):
    """An existing contact takes the file's non-empty values (a re-import updates)."""
    changed = {}
    for field in SCALARS:
        new = c.values.get(field)
        if new and new != row.get(field):
            if field == "email" and row.get("email"):
                continue
            changed[field] = new
    custom = dict(row.get("custom") or {})
    merged = dict(custom, **c.custom)
    if merged != custom:
        changed["custom"] = merged
    return changed


def _fill(row, c):
    changed = {}
    for field in SCALARS:
        if not row.get(field) and c.values.get(field):
            changed[field] = c.values[field]
    custom = dict(row.get("custom") or {})
    merged = dict(c.custom, **custom)
    if merged != custom:
        changed["custom"] = merged
    return changed
