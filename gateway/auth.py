"""Who is calling: a bearer token resolved by the identity service to a user and, for
organization routes, the active membership (X-Organization-Id header, else the session's
active organization). Sets g.ctx = {org_id, user_id, role} for the RPC calls that follow."""
from flask import g, request

from gateway.errors import ApiError
from gateway.permissions import allowed
from gateway.rpc import rpc


def bearer_token():
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "sign in first: send Authorization: Bearer <token>")
    return token.strip()


def authenticate(permission, org_scoped=True):
    token = bearer_token()
    wanted_org = request.headers.get("X-Organization-Id") or None
    # identity answers Unauthorized for unknown, expired or revoked tokens and locked users,
    # and NotFound when the user has no membership in the wanted organization.
    who = rpc.identity.authenticate(token, wanted_org)
    g.user = who
    g.token = token
    org_id = who.get("org_id")
    role = who.get("role")
    if org_scoped or permission != "signed_in":
        if not org_id:
            raise ApiError(403, "no_organization",
                           "this account has no organization yet: complete onboarding first")
        if permission != "signed_in" and not allowed(permission, role):
            raise ApiError(403, "forbidden", f"the {role} role may not do this")
    g.ctx = {"org_id": org_id, "user_id": who["user_id"], "role": role or "viewer",
             "request_id": request.headers.get("X-Request-Id")}
    return who
