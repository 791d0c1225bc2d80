"""The identity service (nameko entrypoints; thin): organizations, users, memberships and roles,
sessions, MFA, API credentials, the audit log.

Self-service calls (profile, password, sessions, MFA, active organization) take the caller's
session token rather than a ctx: identity resolves who is calling itself."""

from eventlet import tpool
from nameko.rpc import rpc
from nameko.timer import timer

from services.common.events import event_handler
from services.common import service as base  # a module, so `nameko run` finds only this class
from services.common.context import context
from services.common.db import Database
from services.common.errors import DomainError, NotFound
from services.common.schemas import is_uuid, load, uuid_or_404
from services.identity import (accounts, audit, clients, credentials, mfa, organizations,
                               schemas as s, store, team)

credentials.offload = tpool.execute


def _raise_if_error(outcome):
    if isinstance(outcome, DomainError):
        raise outcome
    return outcome


class IdentityService(base.ServiceBase):
    name = "identity"
    db = Database("identity")

    @timer(interval=600)
    def purge_expired(self):
        with self.db.transaction() as tx:
            store.purge_expired(tx)

    # --- sign-up, sign-in, token checks -----------------------------------------------------

    @rpc
    def signup(self, data, meta=None):
        data, meta = load(s.SignupIn(), data), load(s.MetaIn(), meta)
        with self.db.transaction() as tx:
            return accounts.signup(tx, data, meta)

    @rpc
    def register(self, data, meta=None):
        data, meta = load(s.RegisterIn(), data), load(s.MetaIn(), meta)
        with self.db.transaction() as tx:
            return accounts.register(tx, data, meta)

    @rpc
    def login(self, data, meta=None):
        data, meta = load(s.LoginIn(), data), load(s.MetaIn(), meta)
        with self.db.transaction() as tx:
            outcome = accounts.login(tx, data, meta)
        return _raise_if_error(outcome)

    @rpc
    def mfa_challenge_enrol(self, challenge_token):
        with self.db.transaction() as tx:
            return accounts.enrol_with_challenge(tx, challenge_token)

    @rpc
    def mfa_challenge_verify(self, data, meta=None):
        data, meta = load(s.ChallengeCode(), data), load(s.MetaIn(), meta)
        with self.db.transaction() as tx:
            outcome = accounts.finish_challenge(tx, data["challenge_token"], data["code"], meta)
        return _raise_if_error(outcome)

    @rpc
    def authenticate(self, token, org_id=None):
        if org_id is not None and not is_uuid(org_id):
            raise NotFound("organization not found")
        with self.db.transaction() as tx:
            return accounts.authenticate(tx, token, org_id)

    @rpc
    def authenticate_client(self, access_token):
        with self.db.transaction() as tx:
            return clients.authenticate_client(tx, access_token)

    @rpc
    def oauth_token(self, data):
        data = load(s.TokenRequest(), data)
        with self.db.transaction() as tx:
            outcome = clients.token(tx, data)
        return _raise_if_error(outcome)

    # --- self-service (by session token) ---------------------------------------------------

    def _who(self, tx, token):
        return accounts.authenticate(tx, token)

    @rpc
    def onboard(self, token, data):
        data = load(s.OnboardingIn(), data)
        with self.db.transaction() as tx:
            return accounts.onboard(tx, self._who(tx, token), data)

    @rpc
    def set_active_organization(self, token, data):
        data = load(s.ActiveOrgIn(), data)
        with self.db.transaction() as tx:
            return accounts.set_active_organization(tx, self._who(tx, token), str(data["org_id"]))

    @rpc
    def update_profile(self, token, data):
        data = load(s.ProfilePatch(), data)
        with self.db.transaction() as tx:
            return accounts.update_profile(tx, self._who(tx, token), data)

    @rpc
    def change_password(self, token, data):
        data = load(s.PasswordChange(), data)
        with self.db.transaction() as tx:
            who = self._who(tx, token)
            outcome = accounts.change_password(tx, who, data)
            if not isinstance(outcome, DomainError):
                team.access_changed(tx, who["org_id"], who["user_id"], "password_changed")
        return _raise_if_error(outcome)

    @rpc
    def list_sessions(self, token):
        with self.db.transaction() as tx:
            return accounts.list_sessions(tx, self._who(tx, token))

    @rpc
    def revoke_session(self, token, session_id):
        if not is_uuid(session_id):
            raise NotFound("session not found")
        with self.db.transaction() as tx:
            who = self._who(tx, token)
            accounts.revoke_session(tx, who, session_id)
            team.access_changed(tx, who["org_id"], who["user_id"], "session_revoked")

    @rpc
    def logout(self, token):
        with self.db.transaction() as tx:
            who = self._who(tx, token)
            accounts.logout(tx, who)
            team.access_changed(tx, who["org_id"], who["user_id"], "session_revoked")

    @rpc
    def mfa_enrol(self, token):
        with self.db.transaction() as tx:
            return mfa.enrol(tx, self._who(tx, token))

    @rpc
    def mfa_confirm(self, token, data, meta=None):
        data, meta = load(s.MfaCode(), data), load(s.MetaIn(), meta)
        with self.db.transaction() as tx:
            outcome = mfa.confirm(tx, self._who(tx, token), data["code"], meta)
        return _raise_if_error(outcome)

    @rpc
    def mfa_disable(self, token, data, meta=None):
        data, meta = load(s.MfaCode(), data), load(s.MetaIn(), meta)
        with self.db.transaction() as tx:
            outcome = mfa.turn_off(tx, self._who(tx, token), data["code"], meta)
        return _raise_if_error(outcome)

    # --- organization ------------------------------------------------------------------------

    @rpc
    def get_organization(self, ctx):
        ctx = context(ctx)
        with self.db.transaction() as tx:
            return organizations.get(tx, ctx)

    @rpc
    def update_organization(self, ctx, data):
        ctx = context(ctx)
        data = load(s.OrganizationPatch(), data)
        with self.db.transaction() as tx:
            ctx, actor = team.actor(tx, ctx)
            result, mfa_changed = organizations.update(tx, ctx, data, actor)
            if mfa_changed:
                team.access_changed(tx, ctx["org_id"], None, "mfa_required_changed")
            return result

    @rpc
    def set_test_recipients(self, ctx, data):
        ctx = context(ctx)
        data = load(s.TestRecipientsIn(), data)
        with self.db.transaction() as tx:
            ctx, actor = team.actor(tx, ctx)
            return organizations.set_test_recipients(tx, ctx, data["recipients"], actor)

    # --- team ----------------------------------------------------------------------------------

    @rpc
    def list_team(self, ctx):
        ctx = context(ctx)
        with self.db.transaction() as tx:
            return team.list_team(tx, ctx)

    @rpc
    def add_teammate(self, ctx, data):
        ctx = context(ctx)
        data = load(s.TeammateIn(), data)
        with self.db.transaction() as tx:
            ctx, actor = team.actor(tx, ctx)
            return team.add(tx, ctx, data, actor)

    @rpc
    def change_teammate(self, ctx, user_id, data):
        ctx = context(ctx)
        user_id = uuid_or_404(user_id, "teammate")
        data = load(s.TeammatePatch(), data)
        with self.db.transaction() as tx:
            ctx, actor = team.actor(tx, ctx)
            return team.change(tx, ctx, user_id, data, actor)

    @rpc
    def remove_teammate(self, ctx, user_id):
        ctx = context(ctx)
        user_id = uuid_or_404(user_id, "teammate")
        with self.db.transaction() as tx:
            ctx, actor = team.actor(tx, ctx)
            team.remove(tx, ctx, user_id, actor)

    # --- API clients ---------------------------------------------------------------------------

    @rpc
    def create_api_client(self, ctx, data):
        ctx = context(ctx)
        data = load(s.ApiClientIn(), data)
        with self.db.transaction() as tx:
            ctx, actor = team.actor(tx, ctx)
            return clients.create(tx, ctx, data, actor)

    @rpc
    def list_api_clients(self, ctx):
        ctx = context(ctx)
        with self.db.transaction() as tx:
            return clients.list_clients(tx, ctx)

    @rpc
    def revoke_api_client(self, ctx, client_pk, options=None):
        """options: {everywhere: bool} (default false: only this organization leaves the
        client's scope; the client is revoked when no organization is left)."""
        ctx = context(ctx)
        client_pk = uuid_or_404(client_pk, "API client")
        options = load(s.RevokeClientOptions(), options)
        with self.db.transaction() as tx:
            ctx, actor = team.actor(tx, ctx)
            return clients.revoke(tx, ctx, client_pk, actor, everywhere=options["everywhere"])

    # --- audit log -----------------------------------------------------------------------------

    @rpc
    def audit_log(self, ctx, query=None):
        ctx = context(ctx)
        query = load(s.AuditQuery(), query)
        with self.db.transaction() as tx:
            team.actor(tx, ctx)
            return audit.page(tx, ctx, query["cursor"], query["limit"])

    # Administrative actions in the other services (services/common/audit.py) join the log.
    @event_handler("contacts", "audit_recorded")
    def on_contacts_audit(self, payload):
        self._store_audit("contacts", payload)

    @event_handler("messaging", "audit_recorded")
    def on_messaging_audit(self, payload):
        self._store_audit("messaging", payload)

    def _store_audit(self, source, payload):
        with self.db.transaction() as tx:
            if not tx.first_time(payload["event_id"], f"identity.audit.{source}"):
                return
            audit.store_event(tx, payload)


