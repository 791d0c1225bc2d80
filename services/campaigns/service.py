"""The campaigns service (nameko entrypoints; thin): goals, templates, agents, campaigns, runs and
drafts over RPC; the run worker and the handlers of identity's and messaging's events."""
import logging
import uuid

from services.common.events import event_handler  # requeues on failure, see there
from nameko.exceptions import UnknownService
from nameko.rpc import RpcProxy, rpc
from nameko.timer import timer

from services.campaigns import catalog, drafts, preflight, runs, schemas, starter, store
from services.campaigns.views import page, plain
from services.common import service as base  # a module, so `nameko run` finds only this class
from services.common.context import context
from services.common.db import Database
from services.common.errors import NotFound
from services.common.rpc import RpcTimeout, call
from services.common.schemas import load

log = logging.getLogger(__name__)

SCHEMAS = {"goals": schemas.GoalSchema, "templates": schemas.TemplateSchema,
           "agents": schemas.AgentSchema, "campaigns": schemas.CampaignSchema}
QUERIES = {"goals": schemas.PageQuery, "templates": schemas.TemplateQuery,
           "agents": schemas.AgentQuery, "campaigns": schemas.CampaignQuery}


def ident(value, kind):
    """A path id that is not a UUID names nothing: NotFound, not a database error."""
    try:
        return str(uuid.UUID(str(value)))
    except (ValueError, TypeError, AttributeError):
        raise NotFound(f"{kind} not found", id=str(value)[:64])


class Peers:
    """The other services the campaigns domain asks (never the other way round: no RPC cycles)."""

    def __init__(self, identity, contacts, messaging):
        self.identity, self.contacts, self.messaging = identity, contacts, messaging

    @staticmethod
    def _worker_call(proxy, method, *args, timeout=30):
        # For the run worker: a service that is down or slow pauses the run, it does not fail it.
        try:
            return call(proxy, method, *args, timeout=timeout)
        except (RpcTimeout, UnknownService) as err:
            raise runs.PeerUnavailable(f"{method}: {err}")

    def get_organization(self, ctx):
        return self._worker_call(self.identity, "get_organization", ctx)

    def organization(self, ctx):  # for RPCs: an identity outage is the caller's error
        return call(self.identity, "get_organization", ctx)

    def resolve_segment(self, ctx, query):
        return self._worker_call(self.contacts, "resolve_segment", ctx, query, timeout=120)

    def segment_exists(self, ctx, segment_id):
        return call(self.contacts, "segment_exists", ctx, segment_id)

    def channel_readiness(self, ctx, channel):
        return call(self.messaging, "channel_readiness", ctx, channel)


class CampaignsService(base.ServiceBase):
    name = "campaigns"
    db = Database("campaigns")
    identity_rpc = RpcProxy("identity")
    contacts_rpc = RpcProxy("contacts")
    messaging_rpc = RpcProxy("messaging")

    @property
    def peers(self):
        return Peers(self.identity_rpc, self.contacts_rpc, self.messaging_rpc)

    # --- goals, templates, agents, campaigns ------------------------------------------------

    def _facts(self, table, ctx, values):
        """What only other services know about the values, asked before any transaction opens:
        a campaign's segment lives in contacts (another organization's id does not exist)."""
        if table == "campaigns" and values.get("segment_id") is not None:
            return {"segment_exists": bool(self.peers.segment_exists(ctx, values["segment_id"]))}
        return {}

    def _create(self, table, ctx, data):
        ctx = context(ctx)
        values = load(SCHEMAS[table](), data)
        facts = self._facts(table, ctx, values)
        with self.db.transaction() as tx:
            return self._view(tx, ctx, table, catalog.create(tx, ctx, table, values, facts))

    def _get(self, table, ctx, row_id):
        ctx = context(ctx)
        with self.db.transaction() as tx:
            row = catalog.get(tx, ctx, table, ident(row_id, catalog.KINDS[table]))
            return self._view(tx, ctx, table, row)

    def _list(self, table, ctx, query):
        ctx = context(ctx)
        q = load(QUERIES[table](), query or {})
        limit, after = q.pop("limit"), q.pop("after")
        with self.db.transaction() as tx:
            result = store.list_rows(tx, table, ctx["org_id"], q, after, limit)
            if table == "agents":
                result["items"] = catalog.agent_views(tx, ctx, result["items"])
            return page(result)

    def _update(self, table, ctx, row_id, data):
        ctx = context(ctx)
        values = load(SCHEMAS[table](), data, partial=True)
        row_id = ident(row_id, catalog.KINDS[table])
        facts = self._facts(table, ctx, values)
        with self.db.transaction() as tx:
            row = catalog.update(tx, ctx, table, row_id, values, facts)
            return self._view(tx, ctx, table, row)

    def _delete(self, table, ctx, row_id):
        ctx = context(ctx)
        with self.db.transaction() as tx:
            catalog.delete(tx, ctx, table, ident(row_id, catalog.KINDS[table]))
        return {"deleted": str(row_id)}

    @staticmethod
    def _view(tx, ctx, table, row):
        if table == "agents":
            row = catalog.agent_views(tx, ctx, [row])[0]
        elif table == "campaigns":
            row = catalog.campaign_view(tx, ctx, row)
        return plain(row)

    @rpc
    def create_goal(self, ctx, data):
        return self._create("goals", ctx, data)

    @rpc
    def get_goal(self, ctx, goal_id):
        return self._get("goals", ctx, goal_id)

    @rpc
    def list_goals(self, ctx, query=None):
        return self._list("goals", ctx, query)

    @rpc
    def update_goal(self, ctx, goal_id, data):
        return self._update("goals", ctx, goal_id, data)

    @rpc
    def delete_goal(self, ctx, goal_id):
        return self._delete("goals", ctx, goal_id)

    @rpc
    def create_template(self, ctx, data):
        return self._create("templates", ctx, data)

    @rpc
    def get_template(self, ctx, template_id):
        return self._get("templates", ctx, template_id)

    @rpc
    def list_templates(self, ctx, query=None):
        return self._list("templates", ctx, query)

    @rpc
    def update_template(self, ctx, template_id, data):
        return self._update("templates", ctx, template_id, data)

    @rpc
    def delete_template(self, ctx, template_id):
        return self._delete("templates", ctx, template_id)

    @rpc
    def create_agent(self, ctx, data):
        return self._create("agents", ctx, data)

    @rpc
    def get_agent(self, ctx, agent_id):
        return self._get("agents", ctx, agent_id)

    @rpc
    def list_agents(self, ctx, query=None):
        return self._list("agents", ctx, query)

    @rpc
    def update_agent(self, ctx, agent_id, data):
        return self._update("agents", ctx, agent_id, data)

    @rpc
    def delete_agent(self, ctx, agent_id):
        return self._delete("agents", ctx, agent_id)

    @rpc
    def create_campaign(self, ctx, data):
        return self._create("campaigns", ctx, data)

    @rpc
    def get_campaign(self, ctx, campaign_id):
        return self._get("campaigns", ctx, campaign_id)

    @rpc
    def list_campaigns(self, ctx, query=None):
        return self._list("campaigns", ctx, query)

    @rpc
    def update_campaign(self, ctx, campaign_id, data):
        return self._update("campaigns", ctx, campaign_id, data)

    @rpc
    def delete_campaign(self, ctx, campaign_id):
        return self._delete("campaigns", ctx, campaign_id)

    @rpc
    def seed_starter_kit(self, ctx, data=None):
        """The same starting kit organization_created seeds, on demand (idempotent)."""
        ctx = context(ctx)
        data = data or {}
        with self.db.transaction() as tx:
            return plain(starter.seed(tx, ctx["org_id"], data.get("name"), data.get("description")))

    @rpc
    def dashboard_facts(self, ctx):
        """What the dashboard needs from campaigns: the starter campaign's getting-started steps
        (starter.progress) and how many agents and campaigns the organization has."""
        ctx = context(ctx)
        with self.db.transaction() as tx:
            facts = starter.progress(tx, ctx["org_id"])
            facts.update(store.counts(tx, ctx["org_id"]))
        return plain(facts)

    # --- runs -------------------------------------------------------------------------------

    @rpc
    def preflight(self, ctx, campaign_id, data=None):
        """Every unmet requirement of running the campaign (empty list when it may run)."""
        ctx = context(ctx)
        run_type = load(schemas.PreflightQuery(), data or {})["type"]
        with self.db.transaction() as tx:
            campaign = catalog.get(tx, ctx, "campaigns", ident(campaign_id, "campaign"))
        reasons = preflight.check(campaign, run_type, preflight.gather(campaign, run_type, self.peers, ctx))
        return {"ready": not reasons, "reasons": reasons}

    @rpc
    def start_run(self, ctx, campaign_id, data):
        ctx = context(ctx)
        run_type = load(schemas.StartRunSchema(), data)["type"]
        campaign_id = ident(campaign_id, "campaign")
        with self.db.transaction() as tx:
            campaign = catalog.get(tx, ctx, "campaigns", campaign_id)
        facts = preflight.gather(campaign, run_type, self.peers, ctx)
        with self.db.transaction() as tx:
            campaign = catalog.get(tx, ctx, "campaigns", campaign_id, lock=True)
            run = runs.start(tx, ctx, campaign, run_type, facts)
            return plain(runs.detail(tx, run))

    @rpc
    def get_run(self, ctx, run_id):
        ctx = context(ctx)
        with self.db.transaction() as tx:
            run = store.get_run(tx, ctx["org_id"], ident(run_id, "run"))
            if run is None:
                raise NotFound("run not found", id=str(run_id))
            return plain(runs.detail(tx, run))

    @rpc
    def list_runs(self, ctx, query=None):
        ctx = context(ctx)
        q = load(schemas.RunQuery(), query or {})
        limit, after = q.pop("limit"), q.pop("after")
        with self.db.transaction() as tx:
            result = store.list_runs(tx, ctx["org_id"], q, after, limit)
            for row in result["items"]:
                row.pop("cursor", None)
            return page(result)

    @rpc
    def cancel_run(self, ctx, run_id):
        ctx = context(ctx)
        with self.db.transaction() as tx:
            run = runs.cancel(tx, ctx, ident(run_id, "run"))
            return plain(runs.detail(tx, run))

    @event_handler("campaigns", "run_queued")
    def run_worker(self, payload):
        """The first page of a new run (or the page a re-queued run stands at). One event works
        one page and emits `run_page` for the next, so a long run never holds a worker (they
        are shared with RPCs) for its whole audience. Idempotency comes from the run itself
        (lease, stored cursor, drafts unique per recipient), not from processed_events: a
        redelivery after a crash must resume the run."""
        event = load(schemas.RunQueued(), payload)
        runs.work_page(self.db, self.peers, event["org_id"], event["run_id"])

    @event_handler("campaigns", "run_page")
    def run_page(self, payload):
        """The page of a run at the event's cursor; nothing when the run already moved past it
        (a redelivered or duplicate event) or was cancelled."""
        event = load(schemas.RunPage(), payload)
        runs.work_page(self.db, self.peers, event["org_id"], event["run_id"], event["cursor"],
                       from_event_cursor=True)

    @timer(interval=60)
    def resume_stalled_runs(self):
        """Re-queue runs nobody works: their worker's lease expired (it died mid-page) or no
        worker took them for a while (a lost event, a peer that was down). A run whose lease is
        live is never touched, however slow its page; SKIP LOCKED and clearing the lease keep
        replicas sweeping at once from queueing one run twice. Runs that only wait for
        approvals or sends are not stalled."""
        with self.db.transaction() as tx:
            requeued = runs.requeue_expired(tx)
        if requeued:
            log.warning("re-queued %d stalled run(s): %s", len(requeued), ", ".join(requeued))

    # --- drafts -----------------------------------------------------------------------------

    @rpc
    def list_drafts(self, ctx, query=None):
        ctx = context(ctx)
        q = load(schemas.DraftQuery(), query or {})
        limit, after = q.pop("limit"), q.pop("after")
        with self.db.transaction() as tx:
            result = store.list_drafts(tx, ctx["org_id"], q, after, limit)
            result["items"] = [drafts.summary(row) for row in result["items"]]
            return page(result)

    @rpc
    def get_draft(self, ctx, draft_id):
        ctx = context(ctx)
        with self.db.transaction() as tx:
            draft = store.get_draft(tx, ctx["org_id"], ident(draft_id, "draft"))
            if draft is None:
                raise NotFound("draft not found", id=str(draft_id))
            return plain(drafts.view(tx, draft))

    @rpc
    def approve_draft(self, ctx, draft_id, data=None):
        ctx = context(ctx)
        note = load(schemas.NoteSchema(), data or {})["note"]
        with self.db.transaction() as tx:
            draft = drafts.approve(tx, ctx, ident(draft_id, "draft"), note)
            return plain(drafts.view(tx, draft))

    @rpc
    def approve_run(self, ctx, run_id):
        ctx = context(ctx)
        run_id = ident(run_id, "run")
        with self.db.transaction() as tx:
            run = store.get_run(tx, ctx["org_id"], run_id)
            if run is None:
                raise NotFound("run not found", id=str(run_id))
        approved = 0
        while True:  # one transaction and one drafts_approved event per batch of 500
            with self.db.transaction() as tx:
                n = drafts.approve_batch(tx, ctx, run)
            approved += n
            if n < drafts.BATCH:
                break
        return {"run_id": run_id, "approved": approved}

    @rpc
    def reject_draft(self, ctx, draft_id, data=None):
        ctx = context(ctx)
        note = load(schemas.NoteSchema(), data or {})["note"]
        draft_id = ident(draft_id, "draft")
        with self.db.transaction() as tx:
            run = drafts.reject(tx, ctx, draft_id, note)
            runs.finish_if_done(tx, ctx["org_id"], run["id"])
            return plain(drafts.view(tx, store.get_draft(tx, ctx["org_id"], draft_id)))

    @rpc
    def retry_draft(self, ctx, draft_id):
        ctx = context(ctx)
        draft_id = ident(draft_id, "draft")
        # Read, write again with no transaction open (the writer and reviewer may be a slow
        # model), then store under the row lock only if the draft is still the attempt read.
        with self.db.transaction() as tx:
            draft, run = drafts.read_for_retry(tx, ctx, draft_id)
        organization = call(self.identity_rpc, "get_organization", ctx)
        composed = drafts.rewrite(draft, run, organization)
        with self.db.transaction() as tx:
            updated = drafts.store_retry(tx, ctx, draft, composed)
            return plain(drafts.view(tx, updated))

    # --- other services' events -------------------------------------------------------------

    @event_handler("identity", "organization_created")
    def seed_organization(self, payload):
        event = load(schemas.OrganizationCreated(), payload)
        with self.db.transaction() as tx:
            if not tx.first_time(event["event_id"], "campaigns.seed_organization"):
                return
            starter.seed(tx, event["org_id"], event["name"], event["description"])

    @event_handler("messaging", "communications_sent")
    def record_sent(self, payload):
        event = load(schemas.CommunicationsSent(), payload)
        with self.db.transaction() as tx:
            if not tx.first_time(event["event_id"], "campaigns.record_sent"):
                return
            for run_id in drafts.record_sent(tx, event["org_id"], event["results"]):
                runs.finish_if_done(tx, event["org_id"], run_id)

    @event_handler("messaging", "reply_received")
    def record_reply(self, payload):
        event = load(schemas.ReplyReceived(), payload)
        with self.db.transaction() as tx:
            if not tx.first_time(event["event_id"], "campaigns.record_reply"):
                return
            runs.record_reply(tx, event["org_id"], event)
