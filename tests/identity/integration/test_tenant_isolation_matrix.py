"""Generated from the gateway's route list: every organization route, called by org A's owner
with ids that belong to org B (or random ids where B has none), answers 404 and never B's data
or a 500. Routes without ids never show B's data. A new route is covered without anyone
remembering to add it.

Routes with a body get a minimal VALID body built from the route's own marshmallow schema
(required fields, type-appropriate values, B's ids in fields that name an id), so the call gets
past validation and the cross-tenant lookup itself answers. A 400 is accepted only when it names
one of the id fields the body filled (the body refers to another organization's object)."""
import datetime as dt
import json
import re
import uuid

import pytest
from marshmallow import ValidationError, fields as mf, validate as mv

from gateway import create_app
from scripts.roles_doc import api_routes

PARAM = re.compile(r"<(?:[a-z_]+:)?([a-z_]+)>")
BODY_METHODS = {"POST", "PUT", "PATCH"}
ORDER = {"GET": 0, "POST": 1, "PUT": 1, "PATCH": 1, "DELETE": 2}

ROUTES = [(m, rule, meta) for m, rule, meta in api_routes(create_app())
          if rule.startswith("/api/v1/") and meta["permission"] != "public"]
WITH_IDS = sorted([r for r in ROUTES if PARAM.search(r[1])], key=lambda r: ORDER.get(r[0], 1))
WITHOUT_IDS = [r for r in ROUTES if not PARAM.search(r[1]) and r[0] == "GET"]
LIST_ROUTES = {rule for m, rule, _ in ROUTES if m == "GET" and not PARAM.search(rule)}


def _items(body):
    if isinstance(body, list):
        return [x for x in body if isinstance(x, dict)]
    if isinstance(body, dict):
        for value in body.values():
            if isinstance(value, list) and value and isinstance(value[0], dict):
                return value
    return []


def _collection(rule, param):
    """The list route whose items carry ids for `param`."""
    prefix = rule[:rule.index(f"<{param}>")].rstrip("/")
    if prefix in LIST_ROUTES:
        return prefix
    last = [p for p in prefix.split("/") if p and not p.startswith("<")][-1]
    return f"/api/v1/{last}" if f"/api/v1/{last}" in LIST_ROUTES else None


@pytest.fixture(scope="module")
def b_ids(tenants):
    """Ids from B's own lists (as B's owner sees them), per list route."""
    b = tenants["b"]["api"]
    found = {}
    for path in sorted(LIST_ROUTES):
        resp = b.get(path)
        if resp.status_code == 200:
            try:
                found[path] = _items(resp.json())
            except ValueError:
                pass
    return found


def _b_value(rule, param, b_ids):
    coll = _collection(rule, param)
    for item in b_ids.get(coll, []) if coll else []:
        value = item.get("id") or item.get(param)
        if value:
            return str(value)
    return str(uuid.uuid4())


# --- minimal valid bodies from the routes' schemas ---------------------------------------------

def _b_id_for(name, b_ids):
    """B's id for a field such as `segment_id`, `writer_agent_id`, `tag_ids` (else a random one)."""
    stem = re.sub(r"_ids?$", "", name).split("_")[-1]
    for item in b_ids.get(f"/api/v1/{stem}s", []):
        value = item.get("id") or item.get(f"{stem}_id")
        if value:
            return str(value)
    return str(uuid.uuid4())


def _names_an_id(name):
    return name == "id" or name.endswith("_id") or name.endswith("_ids")


def _sample_text(field, name):
    length = next((v for v in field.validators if isinstance(v, mv.Length)), None)
    text = f"matrix {name}"
    if length is not None and length.min and len(text) < length.min:
        text = text.ljust(length.min, "x")
    if length is not None and length.max is not None:
        text = text[:length.max]
    return text


def _sample(field, name, b_ids, id_fields, path):
    """A value the field accepts; id fields get B's ids and are remembered in id_fields."""
    choice = next((v for v in field.validators if isinstance(v, mv.OneOf)), None)
    if choice is not None:
        return list(choice.choices)[0]
    if isinstance(field, mf.Nested):
        schema = field.schema
        return _fill(schema, b_ids, id_fields, f"{path}.", required_only=True)
    if isinstance(field, mf.List):
        length = next((v for v in field.validators if isinstance(v, mv.Length)), None)
        count = max(1, (length.min or 1) if length else 1)
        return [_sample(field.inner, name, b_ids, id_fields, path) for _ in range(count)]
    if _names_an_id(name) and not isinstance(field, (mf.Integer, mf.Boolean)):
        id_fields.add(path.split(".")[0])
        return _b_id_for(name, b_ids)
    if isinstance(field, mf.Email):
        return "matrix-probe@example.org"
    if isinstance(field, mf.UUID):
        id_fields.add(path.split(".")[0])
        return str(uuid.uuid4())
    if isinstance(field, mf.Url):
        return "https://example.org/matrix"
    if isinstance(field, mf.Boolean):
        return False
    if isinstance(field, (mf.Integer, mf.Float, mf.Decimal)):
        rng = next((v for v in field.validators if isinstance(v, mv.Range)), None)
        return rng.min if rng is not None and rng.min is not None else 1
    if isinstance(field, mf.DateTime):
        return dt.datetime.now(dt.timezone.utc).isoformat()
    if isinstance(field, mf.Date):
        return dt.date.today().isoformat()
    if isinstance(field, mf.Dict):
        return {}
    return _sample_text(field, name)


def _fill(schema, b_ids, id_fields, prefix="", required_only=True):
    body = {}
    for name, field in schema.fields.items():
        if field.dump_only:
            continue
        key = field.data_key or name
        if field.required or not required_only:
            body[key] = _sample(field, name, b_ids, id_fields, f"{prefix}{key}")
    return body


def valid_body(schema, b_ids):
    """(body, id fields) for the schema: the required fields, plus the optional fields that name
    ids (they refer to other objects, and so must be B's), plus, when the schema still refuses it
    (a schema-level rule such as "give one of"), every field. The body must load."""
    if schema is None:
        return None, set()
    id_fields = set()
    body = _fill(schema, b_ids, id_fields)
    for name, field in schema.fields.items():
        key = field.data_key or name
        if key not in body and _names_an_id(name) and not field.dump_only:
            body[key] = _sample(field, name, b_ids, id_fields, key)
    try:
        schema.load(body)
        return body, id_fields
    except ValidationError:
        pass
    id_fields = set()
    body = _fill(schema, b_ids, id_fields, required_only=False)
    schema.load(body)  # raises: the generator cannot build a valid body for this schema
    return body, id_fields


def _secrets_of_b(tenants, b_ids):
    b = tenants["b"]
    marks = {b["org_id"], b["organization"]["name"], b["email"], tenants["b_mate"]["email"],
             tenants["b_client"]["client_id"]}
    for items in b_ids.values():
        for item in items:
            if isinstance(item.get("id"), str) and len(item["id"]) >= 16:  # uuids, not counters
                marks.add(item["id"])
    return marks


@pytest.mark.parametrize("method,rule,meta", WITH_IDS, ids=[f"{m} {r}" for m, r, _ in WITH_IDS])
def test_org_a_gets_404_for_org_b_ids(method, rule, meta, tenants, b_ids):
    path = rule
    for param in PARAM.findall(rule):
        path = re.sub(rf"<(?:[a-z_]+:)?{param}>", _b_value(rule, param, b_ids), path, count=1)
    body, id_fields = valid_body(meta["body"], b_ids) if method in BODY_METHODS else (None, set())
    kw = {"json": body} if body is not None else ({"json": {}} if method in BODY_METHODS else {})
    resp = tenants["a"]["api"].request(method, path, **kw)
    assert resp.status_code != 500, f"{method} {path}: 500 {resp.text[:300]}"
    # A required query parameter that fails validation may answer 400 before any lookup.
    needs_query = meta["query"] is not None and any(f.required for f in meta["query"].fields.values())
    if resp.status_code == 400 and not needs_query:
        # Only because the (valid) body names another organization's object, and it says which.
        named = set(resp.json().get("errors") or {})
        assert id_fields and named and named <= id_fields, \
            f"{method} {path} {json.dumps(body)}: 400 not about an id field {sorted(id_fields)}: {resp.text[:300]}"
    else:
        assert resp.status_code == 404, f"{method} {path} {json.dumps(body)}: {resp.status_code} {resp.text[:300]}"
    for mark in _secrets_of_b(tenants, b_ids) - {path.rsplit("/", 1)[-1]} - set(path.split("/")):
        assert mark not in resp.text, f"{method} {path} leaked {mark!r}"


@pytest.mark.parametrize("method,rule,meta", WITHOUT_IDS, ids=[f"{m} {r}" for m, r, _ in WITHOUT_IDS])
def test_lists_of_org_a_never_show_org_b_data(method, rule, meta, tenants, b_ids):
    resp = tenants["a"]["api"].get(rule)
    assert resp.status_code != 500, f"GET {rule}: 500 {resp.text[:300]}"
    text = resp.text
    for mark in _secrets_of_b(tenants, b_ids):
        assert mark not in text, f"GET {rule} leaked {mark!r}"
    if resp.status_code == 200 and resp.headers.get("X-Organization-Id"):
        assert resp.headers["X-Organization-Id"] == tenants["a"]["org_id"]


BODY_ROUTES = [r for r in WITH_IDS if r[0] in BODY_METHODS and r[2]["body"] is not None]


@pytest.mark.parametrize("method,rule,meta", BODY_ROUTES, ids=[f"{m} {r}" for m, r, _ in BODY_ROUTES])
def test_the_generated_body_is_valid_for_the_route(method, rule, meta, b_ids):
    """The matrix never hides behind body validation: each body it sends loads."""
    body, _ = valid_body(meta["body"], b_ids)
    meta["body"].load(body)


def test_the_matrix_found_b_data_to_aim_at(b_ids, tenants):
    """The matrix is only meaningful with real B ids: at least B's team and API client."""
    team = {i.get("user_id") for i in b_ids.get("/api/v1/team", [])}
    assert tenants["b_mate"]["user_id"] in team
    assert any(i["id"] == tenants["b_client"]["id"] for i in b_ids.get("/api/v1/api-clients", []))
    print(json.dumps({k: len(v) for k, v in b_ids.items()}))
