"""Generated from the gateway's route list: every organization route, called by a teammate of org
A (a member where the route allows members, else an admin or the owner) with the ids of org B's
real rows, answers 404 and never B's data or a 500. A new route is covered without anyone
remembering to add it.

Ids reach a route in its path, in its body (fields named *_id / *_ids, nested ones such as a
segment rule's tag_id) and in list filters. Bodies are VALID, built from the route's own schema
(tests/identity/matrix_bodies.py), so the call gets past validation and the cross-tenant lookup
itself answers. Where a route answers a foreign reference in its body with a field error
(FOREIGN_REFERENCE), exactly that status is expected, naming only fields that carried B's ids."""
import uuid

import pytest

from gateway.permissions import PERMISSIONS
from tests.identity.matrix_bodies import (
    BODY_METHODS, ROUTES, is_id_param, params, query_ids, valid_body)
from tests.identity.matrix_fixtures import (  # noqa: F401 (matrix is a fixture)
    V1, matrix, prepare, strings_in)


class _Probe:
    """Stands in for an organization when collecting: which body fields carry ids."""
    label, smtp_port = "probe", 25

    def id_for(self, name):
        return str(uuid.uuid4())


def _body_id_fields(method, meta):
    if method not in BODY_METHODS or meta["body"] is None:
        return set()
    return valid_body(meta["body"], _Probe())[1]


def _ids(routes):
    return [f"{m} {r}" for m, r, _ in routes]


WITH_PATH_IDS = [r for r in ROUTES if any(is_id_param(p) for p in params(r[1]))]
WITHOUT_PATH_IDS = [r for r in ROUTES if r not in WITH_PATH_IDS]
WITH_BODY_IDS = [r for r in ROUTES if _body_id_fields(r[0], r[2])]
LISTS = [r for r in WITHOUT_PATH_IDS if r[0] == "GET"]
WRITES = [r for r in WITHOUT_PATH_IDS if r[0] != "GET" and r not in WITH_BODY_IDS]

# Body fields a route does not read, so B's id there refers to nothing.
IGNORED = {
    ("POST", f"{V1}/tags/<tag_id>/contacts"): {"tag_ids"},   # the path names the tag: replaced
}

# Routes that answer another organization's id in the body with a field error (400, the field
# named) instead of 404: they check references while validating what they are given. Every
# other route answers 404.
FOREIGN_REFERENCE = {
    ("POST", f"{V1}/api-clients"): 400,          # org_ids: "not an organization you manage"
    ("POST", f"{V1}/campaigns"): 400,            # goal_id, segment_id, agents, template_id: "no such ..."
    ("PATCH", f"{V1}/campaigns/<campaign_id>"): 400,
    ("PATCH", f"{V1}/organization"): 400,        # default_response_campaign_id: "no such campaign"
    ("POST", f"{V1}/segments"): 400,             # rules.rules.0: "no tag ..."
    ("PATCH", f"{V1}/segments/<segment_id>"): 400,
}

# Real bugs these cases show: (method, rule, field) -> what happens. (None open.)
BUGS = {}

BODY_ID_CASES = [
    pytest.param(m, rule, meta, name, id=f"{m} {rule} {name}",
                 marks=[pytest.mark.xfail(strict=True, reason=BUGS[(m, rule, name)])]
                 if (m, rule, name) in BUGS else [])
    for m, rule, meta in WITH_BODY_IDS for name in sorted(_body_id_fields(m, meta))
    if name not in IGNORED.get((m, rule), ())]


def caller_role(meta):
    """The least role of A the route lets through: member where it may, else admin, else owner."""
    allowed = PERMISSIONS.get(meta["permission"])
    if allowed is None:  # signed_in: any signed-in user
        return "member"
    return next(r for r in ("member", "admin", "owner") if r in allowed)


@pytest.fixture(scope="module")
def b_marks(matrix):
    """What must never appear in an answer to A: B's names, addresses and row ids, from B's own
    fixture rows and from B's lists (as B's owner sees them)."""
    b = matrix.b
    marks = {b.org_id, b.name, b.contact_email, b.client_id}
    marks |= {p["email"] for p in b.people.values()} | {r["email"] for r in b.recipients}
    marks |= {v for v in b.ids.values() if isinstance(v, str) and len(v) >= 16}
    for _, rule, _ in LISTS:
        resp = b.owner.get(rule)
        if resp.status_code == 200 and resp.headers.get("Content-Type", "").startswith("application/json"):
            marks |= {str(item["id"]) for item in _items(resp.json())
                      if isinstance(item.get("id"), str) and len(item["id"]) >= 16}
    return marks


def _items(body):
    if isinstance(body, list):
        return [x for x in body if isinstance(x, dict)]
    if isinstance(body, dict):
        for value in body.values():
            if isinstance(value, list) and value and isinstance(value[0], dict):
                return value
    return []


def _assert_foreign_answer(method, rule, call, resp):
    what = f"{call.describe()}: {resp.status_code} {resp.text[:300]}"
    assert resp.status_code != 500, what
    expected = FOREIGN_REFERENCE.get((method, rule), 404)
    assert resp.status_code == expected, what
    if expected != 404:
        # Only because the (valid) body names another organization's row, and it says which.
        named = {key.split(".")[0] for key in resp.json().get("errors") or {}}
        assert named and named <= call.id_fields, f"not about the id fields {sorted(call.id_fields)}: {what}"


def _assert_nothing_of_b(call, resp, b_marks):
    for mark in b_marks - call.sent:  # an id A sent may be echoed back; that is not a leak
        assert mark not in resp.text, f"{call.describe()} leaked {mark!r}"


@pytest.mark.parametrize("method,rule,meta", WITH_PATH_IDS, ids=_ids(WITH_PATH_IDS))
def test_org_a_gets_404_for_org_b_ids(method, rule, meta, matrix, b_marks):
    call = prepare(matrix.a, method, rule, meta, caller_role(meta), rows=matrix.b)
    resp = call.send()
    assert resp.status_code == 404, f"{call.describe()}: {resp.status_code} {resp.text[:300]}"
    _assert_nothing_of_b(call, resp, b_marks)


@pytest.mark.parametrize("method,rule,meta,name", BODY_ID_CASES)
def test_org_a_cannot_refer_to_org_b_rows_in_a_body(method, rule, meta, name, matrix, b_marks):
    """One body field at a time carries B's id (the rest of the call is A's own, path included):
    refused, so no route checks one reference and trusts the next."""
    call = prepare(matrix.a, method, rule, meta, caller_role(meta))
    foreign = valid_body(meta["body"], matrix.b)[0][name]
    call.kw["json"][name], call.id_fields = foreign, {name}
    call.sent |= strings_in(foreign)
    resp = call.send()
    _assert_foreign_answer(method, rule, call, resp)
    _assert_nothing_of_b(call, resp, b_marks)


def test_an_import_of_org_b_upload_is_not_found(matrix, b_marks):
    """POST /contacts/imports also takes JSON {upload_id, mapping}, outside its declared body."""
    call = prepare(matrix.a, "POST", f"{V1}/contacts/imports", {"body": None}, "member", rows=matrix.b)
    call.kw = {"json": {"upload_id": matrix.b.ids["upload_id"], "mapping": {"email": "email"}}}
    call.sent.add(matrix.b.ids["upload_id"])
    resp = call.send()
    assert resp.status_code == 404, f"{call.describe()}: {resp.status_code} {resp.text[:300]}"
    _assert_nothing_of_b(call, resp, b_marks)


@pytest.mark.parametrize("method,rule,meta", LISTS, ids=_ids(LISTS))
def test_lists_of_org_a_never_show_org_b_data(method, rule, meta, matrix, b_marks):
    """Filters that name ids (campaign_id, tag_id, ...) get B's: nothing of B comes back."""
    call = prepare(matrix.a, method, rule, meta, caller_role(meta))
    filters = query_ids(meta["query"], matrix.b)
    call.kw["params"], call.sent = filters, set(filters.values())
    resp = call.send()
    assert resp.status_code in (200, 404), f"{call.describe()} {filters}: {resp.status_code} {resp.text[:300]}"
    _assert_nothing_of_b(call, resp, b_marks)
    assert resp.headers.get("X-Organization-Id") == matrix.a.org_id, f"GET {rule}: {dict(resp.headers)}"


@pytest.mark.parametrize("method,rule,meta", WRITES, ids=_ids(WRITES))
def test_writes_without_ids_concern_only_org_a(method, rule, meta, matrix, b_marks):
    """A route with no id to aim at B (POST /goals, /tags, PUT settings...): a valid call of A's
    is done in A, says so, and shows nothing of B."""
    call = prepare(matrix.a, method, rule, meta, caller_role(meta))
    resp = call.send()
    assert 200 <= resp.status_code < 300, f"{call.describe()}: {resp.status_code} {resp.text[:300]}"
    _assert_nothing_of_b(call, resp, b_marks)
    if meta["org_scoped"]:
        assert resp.headers.get("X-Organization-Id") == matrix.a.org_id, f"{method} {rule}"


BODY_ROUTES = [r for r in ROUTES if r[0] in BODY_METHODS and r[2]["body"] is not None]


@pytest.mark.parametrize("method,rule,meta", BODY_ROUTES, ids=_ids(BODY_ROUTES))
def test_the_generated_body_is_valid_for_the_route(method, rule, meta, matrix):
    """The matrix never hides behind body validation: each body it sends loads."""
    body, _ = valid_body(meta["body"], matrix.b)
    meta["body"].load(body)


# Runs after the matrix (pytest keeps the file's order): B lost nothing to A's calls.
GETS_WITH_IDS = [r for r in WITH_PATH_IDS if r[0] == "GET"]


@pytest.mark.parametrize("method,rule,meta", GETS_WITH_IDS, ids=_ids(GETS_WITH_IDS))
def test_org_b_rows_survive_the_matrix(method, rule, meta, matrix):
    b = matrix.b
    call = prepare(b, method, rule, meta, "owner")
    resp = call.send()  # as B's owner, in the very session A tried to revoke
    assert resp.status_code == 200, f"{call.describe()}: {resp.status_code} {resp.text[:300]}"


def test_the_matrix_aims_at_real_b_rows(matrix):
    """Every id parameter of the routes has one of B's real rows to aim at (B's owner reads each
    of them above), never a made-up id."""
    wanted = {p for _, rule, _ in WITH_PATH_IDS for p in params(rule) if is_id_param(p)}
    assert wanted <= set(matrix.b.ids), sorted(wanted - set(matrix.b.ids))
