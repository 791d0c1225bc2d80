"""Generated from the gateway's route list and gateway/permissions.py: every route x role.
A role the table allows is never refused (not 403); a role it denies gets 403 before anything
happens. New routes are covered as soon as they exist."""
import re
import uuid

import pytest

from gateway import create_app
from gateway.permissions import PERMISSIONS, ROLES
from scripts.roles_doc import api_routes
from tests.identity.helpers import log_in

PARAM = re.compile(r"<(?:[a-z_]+:)?([a-z_]+)>")
CASES = [(m, rule, meta["permission"], role)
         for m, rule, meta in api_routes(create_app())
         if rule.startswith("/api/v1/") and meta["permission"] != "public"
         for role in ROLES]


def _path(rule):
    return PARAM.sub(lambda _: str(uuid.uuid4()), rule)


@pytest.mark.parametrize("method,rule,permission,role", CASES,
                         ids=[f"{role}: {m} {r}" for m, r, _, role in CASES])
def test_route_allows_exactly_the_roles_of_its_permission(method, rule, permission, role, tenants, api):
    who = tenants["roles"][role]
    session = who["api"]
    if session.get("/api/v1/me").status_code == 401:  # an earlier case signed this role out
        session = who["api"] = log_in(api, who["email"], who.get("password") or tenants["a"]["password"])
    kw = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
    resp = session.request(method, _path(rule), **kw)
    assert resp.status_code != 500, f"{method} {rule} as {role}: 500 {resp.text[:300]}"
    allowed = role in PERMISSIONS.get(permission, set(ROLES))
    if allowed:
        assert resp.status_code != 403, f"{method} {rule} refused {role}: {resp.text[:300]}"
    else:
        assert resp.status_code == 403, f"{method} {rule} let {role} through: {resp.status_code}"
        assert resp.json()["error"] == "forbidden"
