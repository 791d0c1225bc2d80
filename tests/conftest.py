"""Session fixtures: `stack` runs every service, the gateway and the SMTP sink as processes
against a private database and vhost; `api` is an HTTP client for the gateway."""
import os
import sys
import tempfile

import pytest
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
FIXTURES = os.path.join(ROOT, "tests", "fixtures")

from tests.stack import Stack  # noqa: E402


def pytest_collection_modifyitems(items):
    for item in items:
        if "stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.stack)


@pytest.fixture(scope="session")
def stack():
    workdir = tempfile.mkdtemp(prefix="outreach-test-")
    s = Stack(workdir)
    try:
        s.start()
    except Exception:
        s.stop()
        raise
    yield s
    s.stop()


class Api:
    """requests against the gateway, carrying a token and organization when given."""

    def __init__(self, base, token=None, org_id=None):
        self.base, self.token, self.org_id = base, token, org_id
        self.session = requests.Session()

    def as_(self, token, org_id=None):
        return Api(self.base, token, org_id)

    def request(self, method, path, **kw):
        headers = kw.pop("headers", {}) or {}
        if self.token:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        if self.org_id:
            headers.setdefault("X-Organization-Id", self.org_id)
        return self.session.request(method, self.base + path, headers=headers, timeout=60, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def patch(self, path, **kw):
        return self.request("PATCH", path, **kw)

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)


@pytest.fixture(scope="session")
def api(stack):
    return Api(stack.url)


def fixture_path(*parts):
    return os.path.join(FIXTURES, *parts)


def read_fixture(*parts):
    with open(fixture_path(*parts), "rb") as f:
        return f.read()
