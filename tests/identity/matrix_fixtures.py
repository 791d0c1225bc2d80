"""Two organizations for the generated matrices, built through the product's own API: A (the one
whose teammates, one per role, call every route) and B (the other tenant, whose ids A must never
reach). Each holds one real row of every kind a route names (Org.ids) and makes fresh rows on
demand for calls that use one up (Org.fresh); `prepare` turns a route into a valid call."""
import json
import re
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pyotp
import pytest

from gateway.permissions import ROLES
from tests.campaigns.integration.helpers import ModelEndpoint, wait_for
from tests.contacts.integration.test_data_sources import (
    PASSWORD as SFTP_PASSWORD, USER as SFTP_USER, SftpServer)
from tests.identity.helpers import add_teammate, log_in, sign_up
from tests.identity.matrix_bodies import (
    BODY_METHODS, SFTP_FILE, fill_path, params, unique, valid_body)

V1 = "/api/v1"
TEST_RECIPIENTS = 6     # drafts per test run, for the pools approve/reject/retry calls draw on
MAPPING = {"email": "email", "name": "name"}


def _csv():
    return f"email,name\nmatrix-import-{unique()}@example.org,Imported Person\n".encode()


def ok(resp, *statuses):
    assert resp.status_code in statuses, f"{resp.request.method} {resp.request.url}: " \
                                         f"{resp.status_code} {resp.text[:400]}"
    return resp.json() if resp.content else None


class Org:
    """An organization with a teammate per role and one real row of every kind routes name."""

    def __init__(self, api, stack, label, model, sftp):
        self.api, self.label, self.smtp_port = api, label, stack.smtp_port
        owner = sign_up(api, org_name=f"Matrix {label} {uuid.uuid4().hex[:6]}")
        self.org_id, self.name = owner["org_id"], owner["organization"]["name"]
        self.owner = api.as_(owner["token"], self.org_id)
        self.people = {"owner": {"email": owner["email"], "user_id": owner["user_id"]}}
        self.roles = {"owner": self.owner}
        for role in ROLES:
            if role != "owner":
                self.people[role] = add_teammate(self.owner, role)
                self.roles[role] = log_in(api, self.people[role]["email"], org_id=self.org_id)
        self.ids = {"org_id": self.org_id, "organization_id": self.org_id, "provider": "twilio"}
        self.pools = {"pending_draft": [], "failed_draft": []}
        self.lock = threading.Lock()
        self._build(model, sftp)

    # --- building ------------------------------------------------------------------------------

    def post(self, path, body, *statuses):
        return ok(self.owner.post(V1 + path, json=body), *(statuses or (201,)))

    def _build(self, model, sftp):
        o, label, ids = self.owner, self.label, self.ids
        ok(o.put(f"{V1}/settings/email/sender",
                 json={"name": f"Matrix {label}", "email": f"sender-{label}@example.org"}), 200)
        ok(o.put(f"{V1}/settings/email/provider", json={
            "kind": "smtp", "host": "127.0.0.1", "port": self.smtp_port, "username": None,
            "password": None, "tls_mode": "none"}), 200)
        self.recipients = [{"email": f"tester-{i}-{label}-{uuid.uuid4().hex[:6]}@example.org",
                            "name": f"Tester {i}"} for i in range(TEST_RECIPIENTS)]
        ok(o.put(f"{V1}/organization/test-recipients", json={"recipients": self.recipients}), 200)
        self.fresh_provider()
        tag = self.post("/tags", {"title": f"matrix {label}", "kind": "contact"})
        ids["tag_id"] = tag["id"]
        self.contact_email = f"contact-{label}-{uuid.uuid4().hex[:6]}@example.org"
        ids["contact_id"] = self.post("/contacts", {"name": f"Cora {label}", "email": self.contact_email,
                                                    "tags": [tag["title"]]})["id"]
        ids["segment_id"] = self.fresh_segment_id()
        ids["goal_id"] = self.fresh_goal_id()
        ids["template_id"] = self.fresh_template_id()
        ids["writer_agent_id"] = ids["agent_id"] = self.fresh_agent_id()
        ids["reviewer_agent_id"] = self.post("/agents", {"type": "reviewer", "name": f"Rita {label}"})["id"]
        ids["campaign_id"] = self.post("/campaigns", {
            "name": f"Matrix {label}", "channel": "email", "goal_id": ids["goal_id"],
            "segment_id": ids["segment_id"], "writer_agent_id": ids["writer_agent_id"],
            "reviewer_agent_id": ids["reviewer_agent_id"], "template_id": ids["template_id"]})["id"]
        failing_writer = self.post("/agents", {
            "type": "writer", "name": f"Unreachable {label}", "provider": "openai_compatible",
            "base_url": model.url, "model": "matrix-model"})["id"]
        self.failing_campaign_id = self.post("/campaigns", {
            "name": f"Failing {label}", "channel": "email", "goal_id": ids["goal_id"],
            "writer_agent_id": failing_writer, "reviewer_agent_id": ids["reviewer_agent_id"],
            "template_id": ids["template_id"]})["id"]
        ids["source_id"] = self.fresh_source_id()
        ids["sftp_source_id"] = self.post("/data-sources", {
            "kind": "sftp", "name": f"SFTP {label}", "mapping": MAPPING,
            "sftp": {"host": "127.0.0.1", "port": sftp.port, "username": SFTP_USER,
                     "password": SFTP_PASSWORD, "path": "/exports",
                     "host_key_fingerprint": sftp.fingerprint}})["id"]
        ids["upload_id"] = ok(o.post(f"{V1}/contacts/uploads", files=self.upload()), 201)["upload_id"]
        ids["import_id"] = ok(o.post(f"{V1}/contacts/imports", **self.import_form()), 201)["id"]
        ids["client_pk"] = self.fresh_client_pk()
        self.client_id = ok(o.get(f"{V1}/api-clients"), 200)[0]["client_id"]
        ids["user_id"] = self.fresh_user_id()
        ids["session_id"] = self.current_session_id(o)
        # A test run awaiting approval; one of its drafts approved and sent (a communication and
        # its thread); the others wait in the pool for approve/reject calls.
        ids["run_id"] = self.fresh_run_id()
        drafts = self._drafts_of(ids["run_id"], "pending_approval")
        ids["draft_id"] = drafts[0]["id"]
        ok(o.post(f"{V1}/drafts/{drafts[0]['id']}/approve", json={}), 200)
        self.pools["pending_draft"] += [d["id"] for d in drafts[1:]]
        sent = wait_for(lambda: [c for c in ok(o.get(f"{V1}/communications"), 200)["items"]
                                 if c.get("draft_id") == drafts[0]["id"]],
                        timeout=30, what="the approved draft's e-mail")
        ids["communication_id"], ids["thread_id"] = sent[0]["id"], sent[0]["thread_id"]

    def upload(self):
        return {"file": ("contacts.csv", _csv(), "text/csv")}

    def import_form(self):
        return {"files": self.upload(), "data": {"mapping": json.dumps(MAPPING)}}

    def _drafts_of(self, run_id, status):
        """The run's drafts in `status`, once the run has written its whole audience."""
        def found():
            if not ok(self.owner.get(f"{V1}/runs/{run_id}"), 200)["audience_exhausted"]:
                return None
            drafts = lambda st: ok(self.owner.get(f"{V1}/drafts", params={  # noqa: E731
                "run_id": run_id, "status": st, "limit": 500}), 200)["items"]
            return None if drafts("generating") else drafts(status)
        return wait_for(found, timeout=30, what=f"{status} drafts of run {run_id}")

    def current_session_id(self, session):
        return next(s["id"] for s in ok(session.get(f"{V1}/me/sessions"), 200) if s["current"])

    # --- ids for body fields -----------------------------------------------------------------------

    def id_for(self, name):
        """This organization's id for a field such as `segment_id`, `writer_agent_id`, `tag_ids`,
        `default_response_campaign_id` (the exact name first, then its last word)."""
        key = re.sub(r"_ids$", "_id", name)
        if key in self.ids:
            return self.ids[key]
        stem = key.split("_")[-2] + "_id" if key.count("_") else key
        if stem in self.ids:
            return self.ids[stem]
        raise KeyError(f"no {self.label} row for field {name!r}: add one to Org._build")

    # --- fresh rows, for calls that use one up -------------------------------------------------

    def fresh(self, kind, role):
        """A new row of this kind (named like the path parameter) for one call by `role`."""
        factory = getattr(self, f"fresh_{kind}", None)
        if factory is None:
            raise KeyError(f"no factory for a fresh {kind}: add Org.fresh_{kind}")
        return factory(role) if kind == "session_id" else factory()  # a session is the caller's

    def fresh_agent_id(self):
        return self.post("/agents", {"type": "writer", "name": f"Wes {unique()}"})["id"]

    def fresh_goal_id(self):
        return self.post("/goals", {"name": f"Goal {unique()}", "description": "Book a call"})["id"]

    def fresh_template_id(self):
        return self.post("/templates", {"name": f"Template {unique()}", "channel": "email",
                                        "subject": "Hello", "body": "Hi there"})["id"]

    def fresh_campaign_id(self):
        return self.post("/campaigns", {"name": f"Campaign {unique()}", "channel": "email"})["id"]

    def fresh_contact_id(self):
        return self.post("/contacts", {"email": f"fresh-{unique()}-{self.label}@example.org"})["id"]

    def fresh_tag_id(self):
        return self.post("/tags", {"title": f"fresh {unique()}"})["id"]

    def fresh_segment_id(self):
        return self.post("/segments", {"name": f"Segment {unique()}", "rules": [
            {"type": "has_tag", "tag_id": self.ids["tag_id"]}]})["id"]

    def fresh_source_id(self):
        return self.post("/data-sources", {"kind": "file", "name": f"Files {unique()}",
                                           "mapping": MAPPING})["id"]

    def fresh_client_pk(self):
        return self.post("/api-clients", {"name": f"Client {unique()}"})["id"]

    def fresh_user_id(self):
        return add_teammate(self.owner, "member")["user_id"]

    def fresh_locked_user_id(self):
        user_id = self.fresh_user_id()
        ok(self.owner.post(f"{V1}/team/{user_id}/lock"), 200)
        return user_id

    def fresh_provider(self):
        ok(self.owner.put(f"{V1}/settings/providers/twilio", json={
            "account_sid": "AC" + "0" * 32, "auth_token": "matrix-auth-token"}), 200)
        return "twilio"

    def fresh_session_id(self, role):
        """A second session of `role`'s own user (the one the role's calls use stays open)."""
        return self.current_session_id(log_in(self.api, self.people[role]["email"]))

    def fresh_run_id(self, campaign_id=None):
        return ok(self.owner.post(f"{V1}/campaigns/{campaign_id or self.ids['campaign_id']}/runs",
                                  json={"type": "test"}), 201)["id"]

    def fresh_pending_draft(self):
        return self._from_pool("pending_draft", self.ids["campaign_id"], "pending_approval")

    def fresh_failed_draft(self):
        """A draft whose writer failed (its model endpoint refuses): one that may be retried."""
        return self._from_pool("failed_draft", self.failing_campaign_id, "failed")

    def _from_pool(self, pool, campaign_id, status):
        # Drafts come a test run at a time (one per test recipient); calls run in threads.
        with self.lock:
            if not self.pools[pool]:
                run_id = self.fresh_run_id(campaign_id)
                self.pools[pool] += [d["id"] for d in self._drafts_of(run_id, status)]
            return self.pools[pool].pop()

    # --- callers --------------------------------------------------------------------------------

    def signed_in_again(self, role):
        """`role`'s user in a new session of their own (for calls that end the session)."""
        return log_in(self.api, self.people[role]["email"], org_id=self.org_id)

    def disposable(self, role):
        """A new teammate with `role`, signed in (for calls that change the caller's account)."""
        mate = add_teammate(self.owner, role)
        return log_in(self.api, mate["email"], org_id=self.org_id)


# --- turning a route into a valid call --------------------------------------------------------

DESTRUCTIVE = {"lock", "unlock", "cancel", "approve", "reject", "approve-all", "retry"}

# Which long-lived row a path parameter names, where it is not the parameter's own
# (SFTP sources list and sync files; file sources take uploads).
ROW_FOR = {
    ("GET", f"{V1}/data-sources/<source_id>/files"): {"source_id": "sftp_source_id"},
    ("POST", f"{V1}/data-sources/<source_id>/sync"): {"source_id": "sftp_source_id"},
}
# The kind of fresh row a destructive call takes, where it is not the parameter's name.
FRESH_KIND = {
    ("POST", f"{V1}/drafts/<draft_id>/approve"): "pending_draft",
    ("POST", f"{V1}/drafts/<draft_id>/reject"): "pending_draft",
    ("POST", f"{V1}/drafts/<draft_id>/retry"): "failed_draft",
    ("POST", f"{V1}/team/<user_id>/unlock"): "locked_user_id",
}
# Routes that take a multipart upload instead of a JSON body.
UPLOADS = {
    ("POST", f"{V1}/contacts/uploads"): lambda org: {"files": org.upload()},
    ("POST", f"{V1}/contacts/imports"): lambda org: org.import_form(),
    ("POST", f"{V1}/data-sources/<source_id>/imports"): lambda org: {"files": org.upload()},
}


def _mfa_confirm(org, role):
    caller = org.disposable(role)
    secret = ok(caller.post(f"{V1}/me/mfa"), 200)["secret"]
    return caller, {"code": pyotp.TOTP(secret).now()}


def _mfa_disable(org, role):
    caller, body = _mfa_confirm(org, role)
    codes = ok(caller.post(f"{V1}/me/mfa/confirm", json=body), 200)["recovery_codes"]
    return caller, {"code": codes[0]}  # a recovery code: the TOTP code just used is spent


# Calls that end or change the caller's own session or account get a caller of their own with
# the same role, so the role's usual session keeps working: (caller, body fields to set).
CALLERS = {
    ("POST", f"{V1}/auth/logout"): lambda org, role: (org.signed_in_again(role), {}),
    ("PUT", f"{V1}/me/password"): lambda org, role: (org.disposable(role), {}),
    ("POST", f"{V1}/me/mfa/confirm"): _mfa_confirm,
    ("POST", f"{V1}/me/mfa/disable"): _mfa_disable,
    ("POST", f"{V1}/onboarding"): lambda org, role: (org.disposable(role), {}),
}


# Calls that must not overlap others when a matrix sends its calls in threads.
SERIAL = {
    # An organization has one row of a provider's settings: fresh ones for two calls collide.
    ("DELETE", f"{V1}/settings/providers/<provider>"),
    # (SFTP routes overlap the rest on purpose: their sessions once broke concurrent requests in
    # the contacts service, before they moved to a process of their own.)
}


def uses_up_a_row(method, rule):
    names = params(rule)
    return bool(names) and (method == "DELETE" or rule.rsplit("/", 1)[-1] in DESTRUCTIVE)


@dataclass
class Call:
    caller: object
    method: str
    path: str
    kw: dict = field(default_factory=dict)
    id_fields: set = field(default_factory=set)
    sent: set = field(default_factory=set)   # every id the call sent (path and body)

    def send(self):
        return self.caller.request(self.method, self.path, **self.kw)

    def describe(self):
        return f"{self.method} {self.path} {self.kw.get('json', '')}"


def prepare(org, method, rule, meta, role, rows=None, body_rows=None):
    """A valid call of the route by `role` of `org`, with the ids of `rows` in the path and of
    `body_rows` in the body (both default to `org` itself; then calls that use a row up get a
    fresh one, and self-service calls a caller of their own)."""
    rows = rows or org
    body_rows = body_rows or rows
    own = rows is org
    key = (method, rule)
    values = {p: rows.ids[ROW_FOR.get(key, {}).get(p, p)] for p in params(rule)}
    if own and uses_up_a_row(method, rule):
        last = params(rule)[-1]
        values[last] = org.fresh(FRESH_KIND.get(key, last), role)
    caller, extra = org.roles[role], {}
    if own and key in CALLERS:
        caller, extra = CALLERS[key](org, role)
    call = Call(caller, method, fill_path(rule, values), sent={str(v) for v in values.values()})
    if key in UPLOADS:
        call.kw = UPLOADS[key](org)
    elif method in BODY_METHODS and meta["body"] is not None:
        body, call.id_fields = valid_body(meta["body"], body_rows)
        body.update(extra)
        call.kw = {"json": body}
        call.sent |= strings_in(body)
    return call


def strings_in(value):
    """Every string in a JSON value (the ids and names a call sends)."""
    if isinstance(value, dict):
        return set().union(*map(strings_in, value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*map(strings_in, value)) if value else set()
    return {value} if isinstance(value, str) else set()


# --- the session fixture -----------------------------------------------------------------------

class Matrix:
    """A and B (built side by side), and the stand-ins their rows need: an SFTP server offering
    SFTP_FILE, and a model endpoint that refuses (for failed drafts)."""

    def __init__(self, api, stack):
        self.model, self.sftp = ModelEndpoint(refuse=True), SftpServer()
        self.sftp.put(SFTP_FILE, _csv())
        with ThreadPoolExecutor(2) as pool:
            self.a, self.b = pool.map(
                lambda label: Org(api.as_(None), stack, label, self.model, self.sftp), ("a", "b"))

    def close(self):
        self.model.close()
        self.sftp.stop()


_matrices = {}


@pytest.fixture(scope="session")
def matrix(request, api, stack):
    """Organizations A and B, built once per test session (both matrix modules import this
    fixture; each import is its own fixture to pytest, hence the memo)."""
    if id(stack) not in _matrices:
        _matrices[id(stack)] = Matrix(api, stack)
        request.addfinalizer(_matrices[id(stack)].close)
    return _matrices[id(stack)]
