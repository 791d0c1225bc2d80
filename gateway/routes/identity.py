"""Sign-up, sign-in, MFA, self-service, organization settings, team, API credentials, audit log,
and the OAuth 2 token endpoint for machine clients (`POST /oauth/token`, outside /api/v1)."""
import base64
import os
import binascii
from urllib.parse import unquote_plus

from flask import Blueprint, current_app, g, jsonify, request
from marshmallow import fields, Schema

from gateway import auth
from gateway.api import bad_text, endpoint
from gateway.errors import ApiError
from gateway.rpc import rpc
from services.common import errors as e
from services.common.schemas import Strict
from services.identity import schemas as s

bp = Blueprint("identity", __name__)
V1 = "/api/v1"


def meta():
    """Where a sign-in comes from, for the per-address limit. Behind proxies set
    TRUSTED_PROXY_HOPS (config or environment) to the number of proxies that append to
    X-Forwarded-For; otherwise the header is ignored (a client could forge it)."""
    address = request.remote_addr
    hops = int(current_app.config.get("TRUSTED_PROXY_HOPS") or os.environ.get("TRUSTED_PROXY_HOPS") or 0)
    forwarded = [a.strip() for a in request.headers.get("X-Forwarded-For", "").split(",") if a.strip()]
    if hops and len(forwarded) >= hops:
        address = forwarded[-hops]
    return {"address": address, "user_agent": request.headers.get("User-Agent")}


# --- response shapes (for the OpenAPI document) ------------------------------------------------

class OrgRef(Schema):
    org_id = fields.String()
    name = fields.String()
    slug = fields.String()
    role = fields.String()
    locked = fields.Boolean()


class UserOut(Schema):
    id = fields.String()
    email = fields.String()
    name = fields.String()
    mfa_enabled = fields.Boolean()


class OrganizationOut(Schema):
    id = fields.String()
    name = fields.String()
    slug = fields.String()
    description = fields.String()
    default_timezone = fields.String()
    default_country = fields.String()
    mfa_required = fields.Boolean()
    auto_approve_campaign_emails = fields.Boolean()
    auto_approve_response_emails = fields.Boolean()
    default_response_campaign_id = fields.String(allow_none=True)
    test_recipients = fields.List(fields.Nested(s.Recipient))


class SessionOut(Schema):
    token = fields.String()
    expires_at = fields.String()
    user = fields.Nested(UserOut)
    organizations = fields.List(fields.Nested(OrgRef))
    active_org_id = fields.String(allow_none=True)
    mfa_required = fields.Boolean()
    challenge_token = fields.String()


class SignupOut(SessionOut):
    organization = fields.Nested(OrganizationOut)


class MeOut(Schema):
    user_id = fields.String()
    email = fields.String()
    name = fields.String()
    org_id = fields.String(allow_none=True)
    role = fields.String(allow_none=True)
    organizations = fields.List(fields.Nested(OrgRef))


class TeammateOut(Schema):
    user_id = fields.String()
    email = fields.String()
    name = fields.String()
    role = fields.String()
    locked = fields.Boolean()
    created_at = fields.String()


class TeammateOrganization(Schema):
    id = fields.String()
    name = fields.String()


class TeammateAddedOut(TeammateOut):
    organization = fields.Nested(TeammateOrganization, metadata={
        "description": "the organization the teammate joined"})
    existing_account = fields.Boolean(metadata={"description": "the email already had an account, "
                                                "which joined this organization as it is"})
    password_set = fields.Boolean(metadata={"description": "the password given became the account's "
                                            "(false for an existing account: its password was not changed)"})
    notice = fields.String(metadata={"description": "present for an existing account"})


class RevokeClientQuery(Strict):
    everywhere = fields.Boolean(load_default=False, metadata={
        "description": "revoke for every organization of the client (needs owner/admin in each)"})


# --- sign-up and sign-in (public) --------------------------------------------------------------

@bp.post(f"{V1}/signup")
@endpoint("public", body=s.SignupIn(), response=SignupOut(), status=201, tags=["auth"])
def signup(body):
    """Create an organization with its owner and sign the owner in."""
    return rpc.identity.signup(body, meta())


@bp.post(f"{V1}/auth/register")
@endpoint("public", body=s.RegisterIn(), response=SessionOut(), status=201, tags=["auth"])
def register(body):
    """Create an account without an organization (onboarding creates one)."""
    return rpc.identity.register(body, meta())


@bp.post(f"{V1}/auth/login")
@endpoint("public", body=s.LoginIn(), response=SessionOut(), tags=["auth"])
def login(body):
    """Sign in; answers a session, or an MFA challenge when a second factor is needed."""
    return rpc.identity.login(body, meta())


@bp.post(f"{V1}/auth/mfa/enrol")
@endpoint("public", body=s.ChallengeIn(), tags=["auth"])
def mfa_challenge_enrol(body):
    """During an MFA challenge: start TOTP enrolment (secret and provisioning URI)."""
    return rpc.identity.mfa_challenge_enrol(body["challenge_token"])


@bp.post(f"{V1}/auth/mfa/verify")
@endpoint("public", body=s.ChallengeCode(), response=SessionOut(), tags=["auth"])
def mfa_challenge_verify(body):
    """Finish sign-in with a TOTP or recovery code."""
    return rpc.identity.mfa_challenge_verify(body, meta())


@bp.post(f"{V1}/auth/logout")
@endpoint("signed_in", org_scoped=False, status=204, tags=["auth"])
def logout():
    """End this session."""
    rpc.identity.logout(g.token)
    auth.forget(user_id=g.user["user_id"])
    return None, 204


# --- the signed-in user ------------------------------------------------------------------------

@bp.get(f"{V1}/me")
@endpoint("signed_in", org_scoped=False, response=MeOut(), tags=["me"])
def me():
    """Who am I, in which organization and role, and which organizations can I switch to."""
    who = g.user
    body = {k: who.get(k) for k in ("user_id", "email", "name", "org_id", "role",
                                    "organizations", "mfa_enabled")}
    resp = jsonify(body)
    resp.headers["Server-Timing"] = f"auth;dur={g.get('auth_seconds', 0) * 1000:.3f}"
    return resp


@bp.patch(f"{V1}/me")
@endpoint("signed_in", org_scoped=False, body=s.ProfilePatch(), response=UserOut(), tags=["me"])
def update_profile(body):
    """Change my name."""
    result = rpc.identity.update_profile(g.token, body)
    auth.forget(user_id=g.user["user_id"])
    return result


@bp.put(f"{V1}/me/password")
@endpoint("signed_in", org_scoped=False, body=s.PasswordChange(), tags=["me"])
def change_password(body):
    """Change my password (needs the current one); my other sessions end."""
    result = rpc.identity.change_password(g.token, body)
    auth.forget(user_id=g.user["user_id"])
    return result


@bp.get(f"{V1}/me/sessions")
@endpoint("signed_in", org_scoped=False, many=True, tags=["me"])
def list_sessions():
    """My open sessions (the current one is marked)."""
    return rpc.identity.list_sessions(g.token)


@bp.delete(f"{V1}/me/sessions/<session_id>")
@endpoint("signed_in", org_scoped=False, status=204, tags=["me"])
def revoke_session(session_id):
    """End one of my sessions."""
    rpc.identity.revoke_session(g.token, session_id)
    auth.forget(user_id=g.user["user_id"])
    return None, 204


@bp.post(f"{V1}/me/mfa")
@endpoint("signed_in", org_scoped=False, tags=["me"])
def mfa_enrol():
    """Start TOTP enrolment: a secret and an otpauth:// provisioning URI."""
    return rpc.identity.mfa_enrol(g.token)


@bp.post(f"{V1}/me/mfa/confirm")
@endpoint("signed_in", org_scoped=False, body=s.MfaCode(), tags=["me"])
def mfa_confirm(body):
    """Confirm enrolment with a code; answers the recovery codes, shown once."""
    result = rpc.identity.mfa_confirm(g.token, body, meta())
    auth.forget(user_id=g.user["user_id"])
    return result


@bp.post(f"{V1}/me/mfa/disable")
@endpoint("signed_in", org_scoped=False, body=s.MfaCode(), tags=["me"])
def mfa_disable(body):
    """Turn two-factor sign-in off (needs a code; refused when an organization requires it)."""
    result = rpc.identity.mfa_disable(g.token, body, meta())
    auth.forget(user_id=g.user["user_id"])
    return result


@bp.post(f"{V1}/onboarding")
@endpoint("signed_in", org_scoped=False, body=s.OnboardingIn(), status=201, tags=["me"])
def onboarding(body):
    """Create my organization (I become its owner) and make it active."""
    result = rpc.identity.onboard(g.token, body)
    auth.forget(user_id=g.user["user_id"])
    g.ctx = {"org_id": result["active_org_id"]}
    return result, 201


@bp.post(f"{V1}/sessions/active-organization")
@endpoint("signed_in", org_scoped=False, body=s.ActiveOrgIn(), tags=["me"])
def set_active_organization(body):
    """Switch this session's active organization."""
    result = rpc.identity.set_active_organization(g.token, _json_safe(body))
    auth.forget(user_id=g.user["user_id"])
    g.ctx = {"org_id": result["active_org_id"]}
    return result


# --- organization ------------------------------------------------------------------------------

@bp.get(f"{V1}/organization")
@endpoint("read", response=OrganizationOut(), tags=["organization"])
def get_organization():
    """The active organization and its settings."""
    return rpc.identity.get_organization(g.ctx)


@bp.patch(f"{V1}/organization")
@endpoint("manage", body=s.OrganizationPatch(), response=OrganizationOut(), tags=["organization"])
def update_organization(body):
    """Change organization settings (owner/admin)."""
    if body.get("default_response_campaign_id") is not None:
        # identity never calls campaigns (campaigns calls identity), so the gateway checks that
        # the campaign is one of this organization's before identity stores the reference.
        try:
            rpc.campaigns.get_campaign(g.ctx, str(body["default_response_campaign_id"]))
        except e.NotFound:
            raise e.Invalid("invalid organization settings",
                            errors={"default_response_campaign_id": ["no such campaign"]})
    result = rpc.identity.update_organization(g.ctx, _json_safe(body))
    auth.forget(org_id=g.ctx["org_id"])
    return result


@bp.put(f"{V1}/organization/test-recipients")
@endpoint("manage", body=s.TestRecipientsIn(), response=OrganizationOut(), tags=["organization"])
def set_test_recipients(body):
    """Replace the addresses test runs go to."""
    return rpc.identity.set_test_recipients(g.ctx, body)


# --- team --------------------------------------------------------------------------------------

@bp.get(f"{V1}/team")
@endpoint("manage", response=TeammateOut(), many=True, tags=["team"])
def list_team():
    """The team: email, role, organization, locked, created."""
    return rpc.identity.list_team(g.ctx)


@bp.post(f"{V1}/team")
@endpoint("manage", body=s.TeammateIn(), response=TeammateAddedOut(), status=201, tags=["team"])
def add_teammate(body):
    """Add a teammate (email, password, name, role, organization_id: one you manage, default the
    active one); an email that already has an account joins as it is (`existing_account: true`,
    its password not changed)."""
    target = body.get("organization_id")
    if target and str(target) != str(g.ctx["org_id"]):
        # Acting in another organization: this session must pass that organization's own
        # sign-in rules too (membership, lock, its MFA requirement), as if it were the active one.
        # Locked there: 403 for that organization (the session itself is good: it just signed
        # this call in), not a dead session's 401. Its MFA rule unmet stays 401: sign in again.
        try:
            auth.resolve(g.token, str(target))
        except e.Unauthorized as err:
            if str(err) == e.LOCKED_IN_ORGANIZATION:
                raise ApiError(403, "forbidden", str(err))
            raise
    result = rpc.identity.add_teammate(g.ctx, _json_safe(body))
    auth.forget(user_id=result["user_id"])  # an existing account's organizations changed
    g.ctx = dict(g.ctx, org_id=result["organization"]["id"])  # the answer concerns that one
    return result


@bp.patch(f"{V1}/team/<user_id>")
@endpoint("manage", body=s.TeammatePatch(), response=TeammateOut(), tags=["team"])
def change_teammate(user_id, body):
    """Change a teammate's role or lock state."""
    result = rpc.identity.change_teammate(g.ctx, user_id, body)
    auth.forget(user_id=result["user_id"])
    return result


@bp.post(f"{V1}/team/<user_id>/lock")
@endpoint("manage", response=TeammateOut(), tags=["team"])
def lock_teammate(user_id):
    """Lock a teammate out of this organization; their sessions stop at once."""
    result = rpc.identity.change_teammate(g.ctx, user_id, {"locked": True})
    auth.forget(user_id=result["user_id"])
    return result


@bp.post(f"{V1}/team/<user_id>/unlock")
@endpoint("manage", response=TeammateOut(), tags=["team"])
def unlock_teammate(user_id):
    """Unlock a teammate."""
    result = rpc.identity.change_teammate(g.ctx, user_id, {"locked": False})
    auth.forget(user_id=result["user_id"])
    return result


@bp.delete(f"{V1}/team/<user_id>")
@endpoint("manage", status=204, tags=["team"])
def remove_teammate(user_id):
    """Remove a teammate from this organization."""
    rpc.identity.remove_teammate(g.ctx, user_id)
    auth.forget(user_id=user_id)
    return None, 204


# --- API credentials ---------------------------------------------------------------------------

@bp.get(f"{V1}/api-clients")
@endpoint("manage", many=True, tags=["api credentials"])
def list_api_clients():
    """API clients that may act on this organization (secrets are never shown again)."""
    return rpc.identity.list_api_clients(g.ctx)


@bp.post(f"{V1}/api-clients")
@endpoint("manage", body=s.ApiClientIn(), status=201, tags=["api credentials"])
def create_api_client(body):
    """Create OAuth client credentials scoped to organizations you manage; the secret is shown once."""
    return rpc.identity.create_api_client(g.ctx, _json_safe(body))


@bp.delete(f"{V1}/api-clients/<client_pk>")
@endpoint("manage", query=RevokeClientQuery(), status=204, tags=["api credentials"])
def revoke_api_client(client_pk, query):
    """Remove this organization from an API client's scope (revoked with every token when no
    organization is left, or with `?everywhere=true`)."""
    rpc.identity.revoke_api_client(g.ctx, client_pk, {"everywhere": query["everywhere"]})
    return None, 204


# --- audit log ---------------------------------------------------------------------------------

@bp.get(f"{V1}/audit-log")
@endpoint("manage", query=s.AuditQuery(), tags=["audit"])
def audit_log(query):
    """Administrative actions, newest first (`cursor` = the previous page's next_cursor)."""
    return rpc.identity.audit_log(g.ctx, query)


# --- OAuth 2 token endpoint --------------------------------------------------------------------

OAUTH_STATUS = {"invalid_client": 401, "invalid_grant": 400, "unsupported_grant_type": 400}


@bp.post("/oauth/token")
@endpoint("public", tags=["api credentials"])
def oauth_token():
    """client_credentials or refresh_token; both authenticate the client (HTTP Basic preferred,
    or client_id/client_secret in the body). Form-encoded or JSON."""
    if request.form:
        data = dict(request.form)
    elif request.get_data(cache=True).strip():
        data = request.get_json(silent=True, force=True)
        if not isinstance(data, dict):
            return _oauth_error("invalid_request", "the body must be form-encoded"
                                " (application/x-www-form-urlencoded) or a JSON object", 400)
    else:
        data = {}
    known = ("grant_type", "client_id", "client_secret", "refresh_token")
    for name in known:
        if name in data and not isinstance(data[name], str):
            return _oauth_error("invalid_request", f"{name} must be a string", 400)
    data = {k: v for k, v in data.items() if k in known}
    basic = request.headers.get("Authorization", "")
    if basic.lower().startswith("basic "):
        if "client_id" in data or "client_secret" in data:
            # RFC 6749 2.3: one way of authenticating the client per request.
            return _oauth_error("invalid_request", "send the client credentials either as HTTP"
                                " Basic or in the body, not both", 400)
        try:
            raw = base64.b64decode(basic[6:].strip(), validate=True).decode("utf-8")
            cid, _, secret = raw.partition(":")
            data["client_id"], data["client_secret"] = unquote_plus(cid), unquote_plus(secret)
        except (binascii.Error, UnicodeDecodeError):
            return _oauth_error("invalid_client", "malformed Basic credentials", 401)
    for name, value in data.items():
        reason = bad_text(value)
        if reason:
            return _oauth_error("invalid_client" if name.startswith("client_") else "invalid_request",
                                f"{name} {reason}", 401 if name.startswith("client_") else 400)
    if not data.get("grant_type"):
        return _oauth_error("invalid_request", "grant_type is required", 400)
    if data["grant_type"] == "refresh_token" and not data.get("refresh_token"):
        return _oauth_error("invalid_request", "refresh_token is required", 400)
    try:
        result = rpc.identity.oauth_token(data)
    except e.RateLimited as err:
        resp = _oauth_error("rate_limited", err.message, 429)
        resp.headers["Retry-After"] = str(int(err.retry_after))
        return resp
    except (e.Unauthorized, e.Invalid) as err:
        code = err.details.get("oauth_error") or "invalid_request"
        return _oauth_error(code, err.message, OAUTH_STATUS.get(code, 400))
    resp = jsonify(result)
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _oauth_error(code, description, status):
    resp = jsonify({"error": code, "error_description": description})
    resp.status_code = status
    resp.headers["Cache-Control"] = "no-store"
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Basic realm="oauth"'
    return resp


def _json_safe(body):
    """UUIDs loaded by marshmallow go over RPC as strings."""
    out = {}
    for k, v in body.items():
        if isinstance(v, list):
            out[k] = [str(x) if not isinstance(x, (str, int, float, bool, dict)) else x for x in v]
        elif v is not None and not isinstance(v, (str, int, float, bool, dict)):
            out[k] = str(v)
        else:
            out[k] = v
    return out
