"""Tags and segments: CRUD, counts, previews, the run worker's resolve, reachability and "why is
this contact in this segment"."""
from psycopg2 import errors as pg_errors

from services.common.errors import Conflict, Invalid, NotFound
from services.contacts import contacts as contact_rules
from services.contacts import normalize, segments
from services.contacts.store import UNSUB_SQL, ContactStore, new_id, opted_out_sql, _prefixed


# -- tags -------------------------------------------------------------------------------------
def tag_out(row):
    out = {"id": str(row["id"]), "title": row["title"], "kind": row["kind"], "color": row["color"],
           "active": row["active"], "created_at": row["created_at"].isoformat()}
    if "usage" in row:
        out["usage"] = row["usage"]
    return out


def create_tag(tx, ctx, data):
    try:
        tx.execute("SAVEPOINT tag")
        row = tx.one("INSERT INTO tags (id, org_id, kind, title, color, active) VALUES (%s, %s, %s, %s, %s, %s)"
                     " RETURNING *, 0 AS usage",
                     (new_id(), ctx["org_id"], data["kind"], data["title"].strip(), data["color"],
                      data["active"]))
    except pg_errors.UniqueViolation:
        tx.execute("ROLLBACK TO SAVEPOINT tag")
        raise Conflict("a tag with this title exists", errors={"title": ["already exists"]})
    return tag_out(row)


def list_tags(tx, ctx, kind=None, active=None, q=None):
    sql = ("SELECT t.*, (SELECT count(*) FROM contact_tags ct WHERE ct.tag_id = t.id) AS usage"
           " FROM tags t WHERE t.org_id = %s")
    params = [ctx["org_id"]]
    if kind:
        sql += " AND t.kind = %s"
        params.append(kind)
    if active is not None:
        sql += " AND t.active = %s"
        params.append(active)
    if q:
        sql += " AND t.title ILIKE %s"
        params.append(f"%{q}%")
    return [tag_out(r) for r in tx.all(sql + " ORDER BY lower(t.title)", params)]


def get_tag(tx, ctx, tag_id):
    row = tx.one("SELECT t.*, (SELECT count(*) FROM contact_tags ct WHERE ct.tag_id = t.id) AS usage"
                 " FROM tags t WHERE t.org_id = %s AND t.id = %s", (ctx["org_id"], str(tag_id)))
    if row is None:
        raise NotFound("tag not found")
    return row


def update_tag(tx, ctx, tag_id, data):
    get_tag(tx, ctx, tag_id)
    if data:
        sets = ", ".join(f"{k} = %s" for k in data)
        tx.execute(f"UPDATE tags SET {sets} WHERE org_id = %s AND id = %s",
                   list(data.values()) + [ctx["org_id"], str(tag_id)])
    return tag_out(get_tag(tx, ctx, tag_id))


def delete_tag(tx, ctx, tag_id):
    if tx.one("DELETE FROM tags WHERE org_id = %s AND id = %s RETURNING id",
              (ctx["org_id"], str(tag_id))) is None:
        raise NotFound("tag not found")


def _tag_ids(tx, ctx, data, for_removal=False):
    """Tag ids from ids and/or titles; only active contact tags may be newly applied."""
    ids = []
    for tid in data.get("tag_ids") or []:
        row = tx.one("SELECT id, active, kind FROM tags WHERE org_id = %s AND id = %s",
                     (ctx["org_id"], str(tid)))
        if row is None:
            raise NotFound("tag not found", errors={"tag_ids": [f"no tag {tid}"]})
        if row["kind"] != "contact":
            raise Invalid("not a contact tag", errors={"tag_ids": [f"{tid} is a communication tag"]})
        if not row["active"] and not for_removal:
            raise Invalid("inactive tag", errors={"tag_ids": [f"tag {tid} is inactive and cannot be applied"]})
        ids.append(row["id"])
    titles = data.get("tags") or []
    if titles:
        if for_removal:
            rows = tx.all("SELECT id FROM tags WHERE org_id = %s AND kind = 'contact' AND lower(title) = ANY(%s)",
                          (ctx["org_id"], [t.lower() for t in titles]))
            ids += [r["id"] for r in rows]
        else:
            found = ContactStore(tx, ctx["org_id"]).ensure_tags(titles)
            missing = [t for t in titles if t.lower() not in found]
            if missing:
                raise Invalid("inactive tag", errors={"tags": [f"tag {t!r} is inactive and cannot be applied" for t in missing]})
            ids += list(found.values())
    if not ids and not for_removal:
        raise Invalid("no tags given", errors={"tag_ids": ["give tag_ids or tags"]})
    return ids


def tag_contact(tx, ctx, contact_id, data):
    store = ContactStore(tx, ctx["org_id"])
    store.get_contact(contact_id)
    return tag_where(tx, ctx, data, "c.id = %s", [str(contact_id)])


def tag_where(tx, ctx, data, where, params):
    ids = _tag_ids(tx, ctx, data, for_removal=data.get("remove"))
    if not ids:
        return {"changed": 0}
    if data.get("remove"):
        cur = tx.execute(
            "DELETE FROM contact_tags ct USING contacts c WHERE ct.contact_id = c.id"
            f" AND c.org_id = %s AND ct.tag_id = ANY(%s::uuid[]) AND ({where})",
            [ctx["org_id"], [str(i) for i in ids]] + params)
    else:
        cur = tx.execute(
            "INSERT INTO contact_tags (tag_id, contact_id, org_id)"
            " SELECT t.id, c.id, c.org_id FROM contacts c CROSS JOIN unnest(%s::uuid[]) AS t(id)"
            f" WHERE c.org_id = %s AND ({where}) ON CONFLICT DO NOTHING",
            [[str(i) for i in ids], ctx["org_id"]] + params)
    return {"changed": cur.rowcount}


def bulk_tag(tx, ctx, data):
    if data.get("contact_ids") is not None:
        ids = list(dict.fromkeys(str(i) for i in data["contact_ids"]))
        found = {str(r["id"]) for r in tx.all(
            "SELECT id FROM contacts WHERE org_id = %s AND id = ANY(%s::uuid[])", (ctx["org_id"], ids))}
        missing = [i for i in ids if i not in found]
        if missing:
            # Another organization's ids are as unknown as made-up ones: nothing is tagged.
            raise NotFound("contacts not found", errors={"contact_ids": [
                f"no contact {i}" for i in missing[:20]]})
        return tag_where(tx, ctx, data, "c.id = ANY(%s::uuid[])", [ids])
    # The contact list's filters (the service loaded them and kept those that select).
    where, params = contact_rules.filter_sql(tx, ctx, data["filter"])
    return tag_where(tx, ctx, data, where, params)


# -- segments ---------------------------------------------------------------------------------
def _check_tags(tx, ctx, rules):
    for path, rule in segments.flatten(rules):
        if rule["type"] in ("has_tag", "lacks_tag"):
            row = tx.one("SELECT title FROM tags WHERE org_id = %s AND id = %s",
                         (ctx["org_id"], str(rule["tag_id"])))
            if row is None:
                raise Invalid("invalid segment rules", errors={path: [f"no tag {rule['tag_id']}"]})


def segment_out(row):
    return {"id": str(row["id"]), "name": row["name"], "description": row["description"],
            "rules": row["rules"], "created_at": row["created_at"].isoformat(),
            "updated_at": row["updated_at"].isoformat()}


def create_segment(tx, ctx, data):
    try:
        segments.validate(data["rules"])
    except (KeyError, TypeError):
        raise Invalid("invalid segment rules", errors={"rules": ["malformed rules"]})
    _check_tags(tx, ctx, data["rules"])
    from psycopg2.extras import Json
    row = tx.one("INSERT INTO segments (id, org_id, name, description, rules) VALUES (%s, %s, %s, %s, %s)"
                 " RETURNING *", (new_id(), ctx["org_id"], data["name"], data["description"],
                                  Json(data["rules"])))
    return segment_out(row)


def get_segment(tx, ctx, segment_id):
    row = tx.one("SELECT * FROM segments WHERE org_id = %s AND id = %s", (ctx["org_id"], str(segment_id)))
    if row is None:
        raise NotFound("segment not found")
    return row


def update_segment(tx, ctx, segment_id, data):
    from psycopg2.extras import Json
    get_segment(tx, ctx, segment_id)
    if "rules" in data:
        try:
            segments.validate(data["rules"])
        except (KeyError, TypeError):
            raise Invalid("invalid segment rules", errors={"rules": ["malformed rules"]})
        _check_tags(tx, ctx, data["rules"])
        data["rules"] = Json(data["rules"])
    if data:
        sets = ", ".join(f"{k} = %s" for k in data)
        tx.execute(f"UPDATE segments SET {sets}, updated_at = now() WHERE org_id = %s AND id = %s",
                   list(data.values()) + [ctx["org_id"], str(segment_id)])
    return segment_out(get_segment(tx, ctx, segment_id))


def delete_segment(tx, ctx, segment_id):
    if tx.one("DELETE FROM segments WHERE org_id = %s AND id = %s RETURNING id",
              (ctx["org_id"], str(segment_id))) is None:
        raise NotFound("segment not found")


def list_segments(tx, ctx):
    return [segment_out(r) for r in tx.all(
        "SELECT * FROM segments WHERE org_id = %s ORDER BY created_at, id", (ctx["org_id"],))]


def usable_rules(seg):
    """A stored segment's rules, checked before they are evaluated: a rule saved before rules
    were validated (or edited in the database) answers Invalid naming the segment and the rule,
    never a database error."""
    try:
        return segments.validate(seg["rules"])
    except Invalid as err:
        named = "; ".join(f"{path}: {', '.join(map(str, msgs))}" for path, msgs in err.errors.items())
        raise Invalid(f"segment {seg['name']!r} has an invalid rule ({named}); correct it with"
                      f" PATCH /api/v1/segments/{seg['id']}", errors=err.errors,
                      segment_id=str(seg["id"]))


class evaluating:
    """Runs a segment's SQL; a value PostgreSQL still refuses is the segment's fault (Invalid),
    not a server error."""

    def __init__(self, seg):
        self.seg = seg

    def __enter__(self):
        return self

    def __exit__(self, kind, err, tb):
        if kind is not None and issubclass(kind, pg_errors.DataError):
            raise Invalid(f"segment {self.seg['name']!r} has a rule the database cannot evaluate;"
                          f" correct it with PATCH /api/v1/segments/{self.seg['id']}",
                          errors={"rules": [str(err).splitlines()[0]]},
                          segment_id=str(self.seg["id"])) from None
        return False


def count_segment(tx, ctx, segment_id):
    seg = get_segment(tx, ctx, segment_id)
    sql, params = segments.compile_rules(usable_rules(seg))
    with evaluating(seg):
        row = tx.one(f"SELECT count(*) AS n FROM contacts c WHERE c.org_id = %s AND ({sql})",
                     [ctx["org_id"]] + params)
    return {"segment_id": str(seg["id"]), "count": row["n"]}


def preview_segment(tx, ctx, segment_id, limit, defaults):
    seg = get_segment(tx, ctx, segment_id)
    sql, params = segments.compile_rules(usable_rules(seg))
    with evaluating(seg):
        rows = ContactStore(tx, ctx["org_id"]).list_contacts(sql, params, None, limit)
    return {"segment_id": str(seg["id"]),
            "contacts": [contact_rules.serialize(r, defaults.get("default_timezone")) for r in rows]}


def why(tx, ctx, segment_id, contact_id):
    seg = get_segment(tx, ctx, segment_id)
    ContactStore(tx, ctx["org_id"]).get_contact(contact_id)
    leaves = segments.flatten(usable_rules(seg))
    selects, params = [], []
    for i, (_, rule) in enumerate(leaves):
        sql, p = segments.compile_rule(rule)
        selects.append(f"COALESCE(({sql}), FALSE) AS r{i}")
        params += p
    whole, wp = segments.compile_rules(seg["rules"])
    with evaluating(seg):
        row = tx.one(f"SELECT {', '.join(selects)}, COALESCE(({whole}), FALSE) AS member"
                     " FROM contacts c WHERE c.org_id = %s AND c.id = %s",
                     params + wp + [ctx["org_id"], str(contact_id)])
    titles = {str(r["id"]): r["title"] for r in tx.all("SELECT id, title FROM tags WHERE org_id = %s",
                                                       (ctx["org_id"],))}
    rules = []
    for i, (path, rule) in enumerate(leaves):
        named = dict(rule)
        if "tag_id" in rule:
            named["tag_title"] = titles.get(str(rule["tag_id"]))
        rules.append({"path": path, "rule": rule, "description": segments.describe(named),
                      "matched": row[f"r{i}"]})
    return {"segment_id": str(seg["id"]), "contact_id": str(contact_id), "member": row["member"],
            "match": seg["rules"].get("match", "all"), "rules": rules}


def resolve(tx, ctx, q, default_timezone):
    """One keyset page of a segment's audience for a channel. Unreachable contacts come with a
    skip_reason and without the address of the channel they cannot be reached on."""
    seg = get_segment(tx, ctx, q["segment_id"])
    sql, params = segments.compile_rules(usable_rules(seg), after=q.get("after"))
    channel = q["channel"]
    args = [ctx["org_id"]] + params
    page = f"SELECT {_prefixed()}, {UNSUB_SQL} FROM contacts c WHERE c.org_id = %s AND ({sql})"
    if q.get("after"):
        page += " AND c.id > %s"
        args.append(str(q["after"]))
    # Keyset on the (org_id, id) index: each page starts where the last ended, never an OFFSET.
    page += " ORDER BY c.id LIMIT %s"
    args.append(q["limit"])
    with evaluating(seg):
        rows = tx.all(page, args)
    out = []
    for r in rows:
        address = r["email"] if channel == "email" else r["phone"]
        unsub = r[f"unsub_{channel}"]
        if not r["active"]:
            reason = "inactive"
        elif not address:
            reason = "no_email" if channel == "email" else "no_phone"
        elif unsub:
            reason = "unsubscribed"
        elif channel == "email" and r["email_bounce"]:
            reason = "undeliverable"
        else:
            reason = None
        reachable = reason is None
        active = r["active"]
        email_ok = bool(active and not r["unsub_email"] and not r["email_bounce"])
        if channel == "email":
            phone_ok = bool(active and not r["unsub_sms"] and not r["unsub_phone"])
        else:
            phone_ok = bool(active and not r[f"unsub_{channel}"])
        out.append({
            "id": str(r["id"]), "name": r["name"], "first_name": r["first_name"],
            "last_name": r["last_name"],
            # Never an address for a channel the contact cannot be reached on.
            "email": r["email"] if email_ok else None,
            "phone": r["phone"] if phone_ok else None,
            "timezone": r["timezone"] or default_timezone, "custom": r["custom"] or {},
            "reachable": reachable, "skip_reason": reason,
        })
    next_cursor = str(rows[-1]["id"]) if len(rows) == q["limit"] else None
    return {"contacts": out, "next_cursor": next_cursor}


def reachable(tx, ctx, channel, identifiers):
    column = "email" if channel == "email" else "phone"
    idents = {}
    for raw in identifiers:
        if channel == "email":
            norm = normalize.email(raw).value
        else:
            p = normalize.phone(raw, "US").value
            norm = p[0] if p else None
        idents[raw] = norm
    # "May I send to this address?" An address is blocked when it is opted out on the channel,
    # or when it belongs only to contacts that are not reachable (e.g. inactive). An address that
    # is no contact's (a test recipient) may be sent to unless it is opted out.
    norms = [n for n in idents.values() if n]
    if not norms:
        return {raw: False for raw in idents}
    opted_out = {r["ident"] for r in tx.all(
        "SELECT n.ident FROM unnest(%s::text[]) AS n (ident) WHERE EXISTS (SELECT 1 FROM"
        f" unsubscribes u WHERE u.org_id = %s AND {opted_out_sql(channel, 'n.ident')})",
        (norms, ctx["org_id"]))}
    if channel == "email":
        # A hard bounce: nobody's address or a contact's, it cannot receive mail.
        opted_out |= {r["identifier"] for r in tx.all(
            "SELECT identifier FROM undeliverable WHERE org_id = %s AND channel = 'email'"
            " AND identifier = ANY(%s)", (ctx["org_id"], norms))}
    known = {}
    for r in tx.all(
            f"SELECT c.{column} AS ident, bool_or({segments.reachable_sql(channel)}) AS ok"
            f" FROM contacts c WHERE c.org_id = %s AND c.{column} = ANY(%s) GROUP BY c.{column}",
            (ctx["org_id"], norms)):
        known[r["ident"]] = r["ok"]
    return {raw: bool(norm) and norm not in opted_out and known.get(norm, True)
            for raw, norm in idents.items()}


def find_contact(tx, ctx, q, defaults):
    if q.get("email"):
        e = normalize.email(q["email"]).value
        if not e:
            return None
        row = tx.one("SELECT id FROM contacts WHERE org_id = %s AND email = %s", (ctx["org_id"], e))
    elif q.get("phone"):
        p = normalize.phone(q["phone"], defaults.get("default_country") or "US").value
        if not p:
            return None
        row = tx.one("SELECT id FROM contacts WHERE org_id = %s AND phone = %s ORDER BY created_at LIMIT 1",
                     (ctx["org_id"], p[0]))
    else:
        raise Invalid("give email or phone", errors={"email": ["give email or phone"]})
    if row is None:
        return None
    return contact_rules.serialize(ContactStore(tx, ctx["org_id"]).get_contact(row["id"]),
                                   defaults.get("default_timezone"))
