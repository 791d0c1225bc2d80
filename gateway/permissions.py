"""The role matrix, in one table. Every API route names one permission; the gateway checks it
before any RPC. docs/roles.md lists every route with the roles allowed (generated from this)."""

ROLES = ("owner", "admin", "member", "viewer")

PERMISSIONS = {
    # Reading anything in the organization.
    "read": {"owner", "admin", "member", "viewer"},
    # Operating the product: contacts, campaigns, runs, drafts, communications.
    "operate": {"owner", "admin", "member"},
    # Administering the organization: settings, team, channel setup, API credentials, audit log.
    "manage": {"owner", "admin"},
    # Things only owners do (deleting the organization, transferring ownership).
    "own": {"owner"},
    # One's own profile and sessions: any signed-in user, whatever the role.
    "self": {"owner", "admin", "member", "viewer"},
}


def allowed(permission, role):
    return role in PERMISSIONS[permission]
