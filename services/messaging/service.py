"""The messaging service (nameko entrypoints; thin): email settings and channel readiness,
sending approved drafts (email over SMTP, SMS through Twilio's REST API), inbound email, and the communications feed."""
import base64
import binascii
import logging

from nameko.dependency_providers import Config
from services.common.events import event_handler  # requeues on failure, see there
from nameko.rpc import RpcProxy, rpc
from nameko.timer import timer

from services.common import audit
from services.common import rpc as remote
from services.common import service as base  # a module, so `nameko run` finds only this class
from services.common.config import inbound_email_max_bytes
from services.common.context import context
from services.common.db import Database
from services.common.errors import Forbidden, Invalid, NotFound
from services.common.schemas import load, uuid_or_404
from services.messaging import communications, dashboard, inbound, inbound_email, outbound
from services.messaging import settings, store
from services.messaging import providers, sms, webhooks
from services.messaging import schemas

log = logging.getLogger(__name__)

SWEEP_BATCH = 500
SWEEP_AFTER_SECONDS = 60


class MessagingService(base.ServiceBase):
    name = "messaging"
    db = Database("messaging")
    config = Config()
    contacts = RpcProxy("contacts")

    # -- settings ---------------------------------------------------------------------------

    @rpc
    def get_email_settings(self, ctx):
        ctx = context(ctx)
        with self.db.transaction() as tx:
            row = settings.load(tx, ctx["org_id"])
        return settings.view(row, ctx["role"], self.config["PUBLIC_BASE_URL"])

    @rpc
    def set_sender_identity(self, ctx, data):
        ctx = context(ctx)
        data = load(schemas.SenderIdentitySchema(), data)
        with self.db.transaction() as tx:
            before = self._settings_view(tx, ctx)
            settings.set_sender(tx, ctx["org_id"], data)
            after = self._settings_view(tx, ctx)
            audit.record(tx, ctx, "email_sender.updated", "email_settings", ctx["org_id"],
                         before["sender"], after["sender"])
        return after

    def _settings_view(self, tx, ctx):
        return settings.view(settings.load(tx, ctx["org_id"]), ctx["role"],
                             self.config["PUBLIC_BASE_URL"])

    @rpc
    def set_email_provider(self, ctx, data):
        ctx = context(ctx)
        data = load(schemas.EmailProviderSchema(), data)
        with self.db.transaction() as tx:
            before = self._settings_view(tx, ctx)
            settings.set_provider(tx, ctx["org_id"], data, self.config["SECRET_KEY"])
            after = self._settings_view(tx, ctx)
            changed = dict(after["provider"])
            if data.get("password") is not None:
                changed["password_changed"] = True  # password_set alone would not show it
            audit.record(tx, ctx, "email_provider.updated", "email_settings", ctx["org_id"],
                         before["provider"], changed)
        return after

    @rpc
    def channel_readiness(self, ctx, channel):
        ctx = context(ctx)
        channel = load(schemas.ChannelSchema(), {"channel": channel})["channel"]
        with self.db.transaction() as tx:
            row = settings.load(tx, ctx["org_id"])
            twilio = store.provider_settings(tx, ctx["org_id"], "twilio")
        return providers.readiness(row, twilio, channel, self.config["SECRET_KEY"])

    @rpc
    def list_channel_readiness(self, ctx):
        ctx = context(ctx)
        with self.db.transaction() as tx:
            row = settings.load(tx, ctx["org_id"])
            twilio = store.provider_settings(tx, ctx["org_id"], "twilio")
        return [providers.readiness(row, twilio, channel, self.config["SECRET_KEY"])
                for channel in settings.CHANNELS]

    # -- the dashboard ----------------------------------------------------------------------

    @rpc
    def dashboard_facts(self, ctx):
        """{email: readiness, incoming_email, emails_sent, recent_received, recent_sent}."""
        ctx = context(ctx)
        with self.db.transaction() as tx:
            return dashboard.facts(tx, ctx["org_id"])

    @rpc
    def set_incoming_email_skipped(self, ctx, data):
        """{skipped: bool}: defer the incoming-email step or undo that; the step as it stands."""
        ctx = context(ctx)
        skipped = load(schemas.IncomingEmailSkipSchema(), data)["skipped"]
        with self.db.transaction() as tx:
            before, after = dashboard.set_incoming_email_skipped(tx, ctx["org_id"], skipped)
            # No entry when nothing changed (audit.record skips equal before and after).
            audit.record(tx, ctx, "email_incoming." + ("skipped" if skipped else "resumed"),
                         "email_settings", ctx["org_id"], {"skipped": before["skipped"]},
                         {"skipped": after["skipped"]})
        return after

    # -- provider integrations (Twilio, SendGrid, Mailgun, Postmark) ------------------------

    @rpc
    def get_provider_settings(self, ctx):
        ctx = context(ctx)
        with self.db.transaction() as tx:
            return providers.all_views(tx, ctx["org_id"], ctx["role"],
                                       self.config["PUBLIC_BASE_URL"], self.config["SECRET_KEY"])

    @rpc
    def set_provider_settings(self, ctx, provider, data):
        ctx = context(ctx)
        provider = load(schemas.ProviderSchema(), {"provider": provider})["provider"]
        data = load(schemas.PROVIDER_SCHEMAS[provider](), data or {})
        with self.db.transaction() as tx:
            before = self._provider_view(tx, ctx, provider)
            # Secrets given (a rotation shows only as *_set, unchanged): marked, never recorded.
            rotated = [n for n in providers.SECRET_FIELDS[provider] if data.get(n) is not None]
            providers.save(tx, ctx["org_id"], provider, data, self.config["SECRET_KEY"])
            view = self._provider_view(tx, ctx, provider)
            after = dict(_audited(view), **{f"{n}_changed": True for n in rotated})
            audit.record(tx, ctx, f"provider.{provider}.updated", "provider_settings", provider,
                         _audited(before), after)
        return view

    def _provider_view(self, tx, ctx, provider):
        return providers.one_view(tx, ctx["org_id"], provider, ctx["role"],
                                  self.config["PUBLIC_BASE_URL"], self.config["SECRET_KEY"])

    @rpc
    def remove_provider_settings(self, ctx, provider):
        ctx = context(ctx)
        if provider not in schemas.PROVIDERS:
            raise NotFound("no such provider")
        with self.db.transaction() as tx:
            before = self._provider_view(tx, ctx, provider)
            if not store.delete_provider_settings(tx, ctx["org_id"], provider):
                raise NotFound(f"{provider} is not configured")
            audit.record(tx, ctx, f"provider.{provider}.removed", "provider_settings", provider,
                         _audited(before), None)
        return None

    @rpc
    def receive_webhook(self, request):
        """No ctx: the organization is the one the URL key names, else the one the payload
        points at whose secret verifies it. `request`: {provider, kind, key, url, headers,
        body_b64}; `url` is the public URL the provider called (signatures cover it)."""
        if not isinstance(request, dict):
            raise Invalid("invalid input", errors={"request": ["an object"]})
        key = request.get("key")
        if key is not None and (not isinstance(key, str) or not key or len(key) > 200):
            raise NotFound("unknown webhook address")
        try:
            return webhooks.handle(self.db, request, self.config["SECRET_KEY"], self._contact_for)
        except webhooks.Refused as err:
            # Crosses RPC as the registered Forbidden (403), not as the domain subclass.
            raise Forbidden(err.message)

    def _contact_for(self, org_id, email=None, phone=None):
        query = {"email": email} if email else {"phone": phone}
        if not (email or phone):
            return None
        try:
            found = remote.call(self.contacts, "find_contact", {"org_id": org_id, "role": "system"},
                                query, timeout=10)
        except Exception:
            log.warning("contacts.find_contact failed; webhook message stored without a contact")
            return None
        return str(found["id"]) if found and found.get("id") else None

    # -- sending ----------------------------------------------------------------------------

    @event_handler("campaigns", "drafts_approved")
    def send_approved_drafts(self, payload):
        try:
            data = load(schemas.DraftsApprovedSchema(), payload)
        except Invalid as err:
            # A malformed event cannot become valid by retrying; say so and drop it.
            log.error("ignoring malformed drafts_approved event: %s", err.details.get("errors"))
            return
        with self.db.transaction() as tx:
            if not tx.first_time(data["event_id"], "messaging.send_approved_drafts"):
                return
            queued = outbound.accept_drafts(tx, data, self.config["SECRET_KEY"])
        self._deliver(data["org_id"], queued)

    @timer(interval=30)
    def send_queued(self):
        # Rows a crash, a contacts outage or a transient SMTP refusal left queued. Every replica
        # runs this; claiming with SKIP LOCKED and the queued->sending step keep sends single.
        with self.db.transaction() as tx:
            due = store.due_queued(tx, SWEEP_BATCH, SWEEP_AFTER_SECONDS)
        by_org = {}
        for row in due:
            by_org.setdefault(str(row["org_id"]), []).append(str(row["id"]))
        for org_id, ids in by_org.items():
            self._deliver(org_id, ids)

    def _deliver(self, org_id, ids):
        ctx = {"org_id": org_id, "role": "system"}

        def reachable(channel, identifiers):
            return remote.call(self.contacts, "reachable", ctx,
                               {"channel": channel, "identifiers": identifiers}, timeout=15)

        sms_config = {"api_base": self.config.get("TWILIO_API_BASE") or sms.DEFAULT_API_BASE,
                      "public_base_url": self.config.get("PUBLIC_BASE_URL")}
        outbound.deliver(self.db, org_id, ids, reachable, self.config["SECRET_KEY"],
                         sms_config=sms_config)

    # -- inbound ----------------------------------------------------------------------------

    @rpc
    def receive_email(self, inbound_key, raw_b64):
        """No ctx: the inbound key in the webhook URL names the organization."""
        if not isinstance(inbound_key, str) or not inbound_key or len(inbound_key) > 200:
            raise NotFound("unknown inbound address")
        try:
            raw = base64.b64decode(raw_b64 or "", validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise Invalid("invalid input", errors={"body": ["not base64"]})
        if not raw.strip():
            raise Invalid("invalid input", errors={"body": ["empty message"]})
        if len(raw) > inbound_email_max_bytes(self.config):
            raise Invalid("invalid input", errors={"body": ["message too large"]})
        parsed = inbound_email.parse(raw)
        if not parsed["from_address"] or "@" not in parsed["from_address"]:
            raise Invalid("invalid input", errors={"body": ["not an email: no From address"]})
        with self.db.transaction() as tx:
            row = store.settings_by_inbound_key(tx, inbound_key)
            if row is None:
                raise NotFound("unknown inbound address")
            org_id = str(row["org_id"])
            original = inbound.match(tx, org_id, parsed)
        contact_id = None
        if parsed["bounce"] is None and (original is None or original["contact_id"] is None):
            contact_id = self._find_contact(org_id, parsed["from_address"])
        for _ in range(2):
            try:
                with self.db.transaction() as tx:
                    return inbound.record(tx, org_id, parsed, original, contact_id)
            except inbound.DuplicateRace:
                continue
        raise inbound.DuplicateRace()

    def _find_contact(self, org_id, address):
        if not address:
            return None
        try:
            found = remote.call(self.contacts, "find_contact", {"org_id": org_id, "role": "system"},
                                {"email": address}, timeout=10)
        except Exception:
            # The contact link is an enrichment; the reply is still recorded in its thread.
            log.warning("contacts.find_contact failed; inbound mail stored without a contact")
            return None
        return str(found["id"]) if found and found.get("id") else None

    # -- communications feed ----------------------------------------------------------------

    @rpc
    def list_communications(self, ctx, filters=None):
        ctx = context(ctx)
        filters = load(schemas.CommunicationFiltersSchema(), filters or {})
        # `after` is the keyset cursor as everywhere in the API; `cursor` its deprecated alias.
        field = "after" if filters.get("after") else "cursor"
        token = filters.get("after") or filters.get("cursor")
        limit = filters["limit"]
        with self.db.transaction() as tx:
            cursor = None
            if token:
                cursor = communications.cursor_position(
                    token, lambda comm_id: store.cursor_row(tx, ctx["org_id"], comm_id), field)
            rows = store.list_communications(tx, ctx["org_id"], filters, cursor, limit)
        page = rows[:limit]
        return {"items": [communications.view(r) for r in page],
                "next_cursor": communications.encode_cursor(page[-1]) if len(rows) > limit else None}

    @rpc
    def get_communication(self, ctx, communication_id):
        ctx = context(ctx)
        comm_id = uuid_or_404(communication_id, "communication")
        with self.db.transaction() as tx:
            row = store.get_communication(tx, ctx["org_id"], comm_id)
        if row is None:
            raise NotFound("communication not found")
        return communications.view(row)

    @rpc
    def get_thread(self, ctx, thread_id):
        ctx = context(ctx)
        thread_id = uuid_or_404(thread_id, "thread")
        with self.db.transaction() as tx:
            thread = store.get_thread(tx, ctx["org_id"], thread_id)
            if thread is None:
                raise NotFound("thread not found")
            messages = store.thread_messages(tx, ctx["org_id"], thread_id)
        return communications.thread_view(thread, messages)




def _audited(view):
    """A provider view without its webhook URLs (they hold the inbound key, a secret)."""
    if not isinstance(view, dict):
        return view
    return {k: v for k, v in view.items()
            if "webhook" not in k and "url" not in k and k != "updated_at"}
