"""API credentials for machine clients (OAuth 2 client credentials).

- A client is scoped to organizations its creator manages (owner/admin); the secret is shown once.
  The scope is checked again at every token request and token check: an organization the
  creator no longer manages drops out.
- Access tokens `tru_at_...` live 15 minutes; refresh tokens `tru_rt_...` 30 days, single use,
  rotated on every refresh, and only usable with the client's own credentials. Presenting a
  spent refresh token again means it leaked: every token of that client is revoked.
- The token endpoint allows 10 requests a minute per client (counted in Postgres, so it holds
  across replicas).
"""
import datetime as dt
import uuid

from services.common.errors import Forbidden, Invalid, NotFound, RateLimited, Unauthorized
from services.identity import accounts, audit, credentials, store

ACCESS_TTL = dt.timedelta(minutes=15)
REFRESH_TTL = dt.timedelta(days=30)
TOKEN_RATE_LIMIT = 10
TOKEN_RATE_WINDOW = 60
MANAGER_ROLES = ("owner", "admin")


def client_view(c, secret=None):
    out = {"id": str(c["id"]), "client_id": c["client_id"], "name": c["name"],
           "org_ids": [str(o) for o in c["org_ids"]], "default_org_id": str(c["default_org_id"]),
           "created_by": None if c["created_by"] is None else str(c["created_by"]),
           "created_at": c["created_at"].isoformat(),
           "revoked_at": c["revoked_at"].isoformat() if c["revoked_at"] else None}
    if secret is not None:
        out["client_secret"] = secret
    return out


def create(tx, ctx, data, actor):
    """The creator must manage every organization named; the active one is always included."""
    wanted = [str(o) for o in (data.get("org_ids") or [])] or [ctx["org_id"]]
    if ctx["org_id"] not in wanted:
        wanted.insert(0, ctx["org_id"])
    managed = {str(m["org_id"]) for m in store.memberships_of_user(tx, ctx["user_id"])
               if m["role"] in MANAGER_ROLES and not m["locked"]}
    outside = [o for o in wanted if o not in managed]
    if outside:
        raise Invalid("you can only grant organizations you manage",
                      errors={"org_ids": [f"not an organization you manage: {o}" for o in outside]})
    secret = credentials.new_token("tru_cs_", 32)
    secret_hash = credentials.hash_password(secret)
    client = None
    while client is None:  # a client_id collision (practically never) draws another
        client = store.insert_client(tx, {
            "id": str(uuid.uuid4()), "client_id": credentials.new_token("tru_ci_", 12),
            "secret_hash": secret_hash, "name": data["name"].strip(),
            "org_ids": list(dict.fromkeys(wanted)), "default_org_id": ctx["org_id"],
            "created_by": ctx["user_id"],
        })
    audit.record(tx, ctx, actor, "api_client.created", "api_client", client["id"], None,
                 {"name": client["name"], "client_id": client["client_id"],
                  "org_ids": [str(o) for o in client["org_ids"]]})
    return client_view(client, secret=secret)


def list_clients(tx, ctx):
    return [client_view(c) for c in store.clients_of_org(tx, ctx["org_id"])]


def revoke(tx, ctx, pk, actor, everywhere=False):
    """Revoking in one organization takes that organization out of the client's scope (its
    tokens lose it at once); the client keeps working for its other organizations and is
    revoked with every token when no organization is left. `everywhere` revokes it for all its
    organizations at once, allowed to someone who manages (owner/admin, unlocked) every one of
    them. Returns {"revoked": bool, "org_ids": remaining scope or []}."""
    client = store.client_in_org(tx, ctx["org_id"], pk, for_update=True)
    if client is None:
        raise NotFound("API client not found")
    scope = [str(o) for o in client["org_ids"]]
    if everywhere and len(scope) > 1:
        managed = {str(m["org_id"]) for m in store.memberships_of_user(tx, ctx["user_id"])
                   if m["role"] in MANAGER_ROLES and not m["locked"]}
        if not set(scope) <= managed:
            raise Forbidden("revoking everywhere needs owner or admin rights in every organization "
                            "of the client; revoke it here to remove only this organization")
    if everywhere or len(scope) == 1 or client["revoked_at"] is not None:
        store.revoke_client(tx, ctx["org_id"], client["id"])
        for org_id in (scope if everywhere else [ctx["org_id"]]):
            audit.record(tx, dict(ctx, org_id=org_id), actor, "api_client.revoked", "api_client",
                         client["id"], {"revoked_at": None}, {"revoked": True})
        return {"revoked": True, "org_ids": []}
    updated = store.remove_client_org(tx, ctx["org_id"], client["id"])
    audit.record(tx, ctx, actor, "api_client.removed_from_organization", "api_client",
                 client["id"], {"in_scope": True}, {"in_scope": False})
    return {"revoked": False, "org_ids": [str(o) for o in updated["org_ids"]]}


def rate_limit(tx, client_key, record=True):
    """RateLimited when the client asked too often in the last minute, else None. `record`
    counts this request; without it the check only reads (the cheap check made before argon2)."""
    bucket = f"oauth:{client_key}"
    if record:
        count, oldest_age = store.hit(tx, bucket, TOKEN_RATE_WINDOW)
    else:
        count, oldest_age = store.hits(tx, bucket, TOKEN_RATE_WINDOW)
        count += 1  # as if this request were counted
    if count > TOKEN_RATE_LIMIT:
        return RateLimited("too many token requests", retry_after=accounts.retry_after(
            oldest_age, TOKEN_RATE_WINDOW))
    return None


def scope(tx, client):
    """The organizations a client acts for now: those of its scope its creator still manages
    (an unlocked owner or admin). Its creator being demoted, locked or removed in one takes
    that organization out of every token at once; promoted again, it comes back."""
    return store.managed_scope(tx, client["created_by"], client["org_ids"])


def default_org(client, orgs):
    return str(client["default_org_id"]) if str(client["default_org_id"]) in orgs else orgs[0]


def issue_pair(tx, client, orgs):
    access = credentials.new_token("tru_at_")
    refresh = credentials.new_token("tru_rt_")
    now = accounts.now()
    for kind, token, ttl in (("access", access, ACCESS_TTL), ("refresh", refresh, REFRESH_TTL)):
        store.insert_token(tx, {"id": str(uuid.uuid4()), "client_pk": client["id"], "kind": kind,
                                "token_hash": credentials.token_hash(token), "expires_at": now + ttl})
    return {"access_token": access, "token_type": "bearer",
            "expires_in": int(ACCESS_TTL.total_seconds()), "refresh_token": refresh,
            "refresh_token_expires_in": int(REFRESH_TTL.total_seconds()),
            "scope": " ".join(orgs)}


NO_SCOPE = ("the client's creator no longer manages any of its organizations; "
            "an owner or admin there must create a new client")


def authenticated_client(tx, data):
    """The client whose client_id and client_secret these are (OAuth client authentication,
    RFC 6749 section 2.3), or None. Reads only: argon2 runs in a thread pool, and no row may be
    locked while it does (see accounts.login)."""
    client = store.client_by_client_id(tx, data.get("client_id") or "")
    ok = credentials.verify_password(client["secret_hash"] if client else None,
                                     data.get("client_secret") or "")
    if not ok or client["revoked_at"] is not None:
        return None
    return client


def token(tx, data):
    """The token endpoint. Returns the token response, or an error to raise after commit
    (rate-limit hits and revocations must be kept).

    Both grants authenticate the client (RFC 6749 section 6: a confidential client refreshing
    must): a refresh token only works together with the credentials of the client it was issued
    to. Errors carry OAuth's codes (section 5.2): invalid_client for the client, invalid_grant
    for the refresh token."""
    grant = data.get("grant_type")
    if grant not in ("client_credentials", "refresh_token"):
        return Invalid("unsupported grant type", errors={"grant_type": [
            "must be client_credentials or refresh_token"]}, oauth_error="unsupported_grant_type")
    client_id = data.get("client_id") or ""
    limited = rate_limit(tx, client_id, record=False)
    if limited:
        return limited
    client = authenticated_client(tx, data)
    limited = rate_limit(tx, client_id)
    if limited:
        return limited
    if client is None:
        return Unauthorized("client authentication failed", oauth_error="invalid_client")
    orgs = scope(tx, client)
    if not orgs:
        return Unauthorized(NO_SCOPE, oauth_error="invalid_client")
    if grant == "refresh_token":
        refused = spend_refresh_token(tx, client, data.get("refresh_token") or "")
        if refused:
            return refused
    return issue_pair(tx, client, orgs)


def spend_refresh_token(tx, client, refresh_token):
    """Mark the client's refresh token used; an error when it is not a live refresh token of this
    client. A spent one coming back means someone kept a copy: every token of the client ends."""
    row = store.token_by_hash(tx, credentials.token_hash(refresh_token), for_update=True)
    if row is None or row["kind"] != "refresh" or row["client_pk"] != client["id"]:
        return Unauthorized("the refresh token is not valid for this client",
                            oauth_error="invalid_grant")
    if row["used_at"] is not None:
        store.revoke_client_tokens(tx, row["client_pk"])
        return Unauthorized("the refresh token was already used; all tokens of this client "
                            "are revoked", oauth_error="invalid_grant")
    if row["revoked_at"] is not None or row["expires_at"] <= accounts.now():
        return Unauthorized("the refresh token is not valid", oauth_error="invalid_grant")
    store.mark_token_used(tx, row["id"])
    return None


def authenticate_client(tx, access_token):
    row = store.token_by_hash(tx, credentials.token_hash(access_token or ""))
    if (row is None or row["kind"] != "access" or row["revoked_at"] is not None
            or row["client_revoked_at"] is not None or row["expires_at"] <= accounts.now()):
        raise Unauthorized("the access token is not valid or has expired")
    orgs = scope(tx, row)
    if not orgs:
        raise Unauthorized(NO_SCOPE)
    return {"client_id": row["client_id"], "org_ids": orgs, "default_org_id": default_org(row, orgs),
            "expires_at": row["expires_at"].isoformat()}
