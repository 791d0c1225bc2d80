"""Generated from the gateway's route list and gateway/permissions.py: every route x role. Each
call is a valid one (real ids of rows in the caller's own organization, a body built from the
route's schema, a fresh row when the call uses one up), so a role the table allows gets a 2xx and
a role it denies gets 403 before anything happens. New routes are covered as soon as they exist."""
from concurrent.futures import ThreadPoolExecutor

import pytest

from gateway.permissions import PERMISSIONS, ROLES
from tests.identity.matrix_bodies import ROUTES
from tests.identity.matrix_fixtures import SERIAL, matrix, prepare  # noqa: F401 (a fixture)

# The answer an allowed role gets where a generic valid call cannot get a 2xx. Keep it short, and
# say why for each. Empty today: SFTP routes talk to a real SFTP server, retry takes a draft
# whose writer failed, cancel and approve-all take a fresh test run.
ALLOWED_STATUS = {}

# Real bugs these cases show, for the lead to fix: (method, rule, role) -> what happens.
BUGS = {}

CASES = [(m, rule, meta, role) for m, rule, meta in ROUTES for role in ROLES]


def _param(method, rule, meta, role):
    reason = BUGS.get((method, rule, role))
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(method, rule, meta, role, marks=marks, id=f"{role}: {method} {rule}")


@pytest.fixture(scope="module")
def answers(matrix):
    """Every case's call and answer. Each call has its rows (and, where it matters, its caller)
    to itself, so the calls go out eight at a time and their order does not matter; the few
    that must not overlap others (SERIAL) go out one by one afterwards."""
    def send(case):
        method, rule, meta, role = case
        try:
            call = prepare(matrix.a, method, rule, meta, role)
            return (method, rule, role), (call, call.send())
        except Exception as err:  # raised again by the case's own test
            return (method, rule, role), (err, None)

    with ThreadPoolExecutor(8) as pool:
        out = dict(pool.map(send, [c for c in CASES if c[:2] not in SERIAL]))
    out.update(map(send, [c for c in CASES if c[:2] in SERIAL]))
    return out


@pytest.mark.parametrize("method,rule,meta,role", [_param(*c) for c in CASES])
def test_route_allows_exactly_the_roles_of_its_permission(method, rule, meta, role, answers):
    call, resp = answers[(method, rule, role)]
    if isinstance(call, Exception):
        raise call
    what = f"{call.describe()} as {role}: {resp.status_code} {resp.text[:300]}"
    assert resp.status_code != 500, what
    if role in PERMISSIONS.get(meta["permission"], set(ROLES)):
        expected = ALLOWED_STATUS.get((method, rule))
        if expected is not None:
            assert resp.status_code == expected, what
        else:
            assert 200 <= resp.status_code < 300, what
    else:
        assert resp.status_code == 403, what
        assert resp.json()["error"] == "forbidden", what
