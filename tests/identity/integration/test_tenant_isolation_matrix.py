"""Generated from the gateway's route list: every organization route, called by org A's owner
with ids that belong to org B (or random ids where B has none), answers 404 and never B's data
or a 500. Routes without ids never show B's data. A new route is covered without anyone
remembering to add it."""
import json
import re
import uuid

import pytest

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
    kw = {"json": {}} if method in BODY_METHODS else {}
    resp = tenants["a"]["api"].request(method, path, **kw)
    assert resp.status_code != 500, f"{method} {path}: 500 {resp.text[:300]}"
    # A body or required query parameter that fails validation may answer 400 before any lookup.
    needs_query = meta["query"] is not None and any(f.required for f in meta["query"].fields.values())
    allowed = {404, 400} if method in BODY_METHODS or needs_query else {404}
    assert resp.status_code in allowed, f"{method} {path}: {resp.status_code} {resp.text[:300]}"
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


def test_the_matrix_found_b_data_to_aim_at(b_ids, tenants):
    """The matrix is only meaningful with real B ids: at least B's team and API client."""
    team = {i.get("user_id") for i in b_ids.get("/api/v1/team", [])}
    assert tenants["b_mate"]["user_id"] in team
    assert any(i["id"] == tenants["b_client"]["id"] for i in b_ids.get("/api/v1/api-clients", []))
    print(json.dumps({k: len(v) for k, v in b_ids.items()}))
