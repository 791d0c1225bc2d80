"""The reporting service (nameko entrypoints; thin): counts what happened, from events only,
and answers analytics queries over those counts."""
import logging

from services.common.events import event_handler  # requeues on failure, see there
from nameko.rpc import rpc

from services.common.context import context
from services.common.db import Database
from services.common.errors import Invalid
from services.common.schemas import load
from services.common import service as base  # a module, so `nameko run` finds only this class
from services.reporting import metrics, store
from services.reporting.schemas import AnalyticsQuery, EventEnvelope, as_filters

log = logging.getLogger(__name__)


class ReportingService(base.ServiceBase):
    name = "reporting"
    db = Database("reporting")

    def count(self, event, payload):
        """Add one event's increments exactly once (the guard and the upsert share a transaction)."""
        try:
            envelope = load(EventEnvelope(), payload)
        except Invalid as err:
            log.warning("dropping %s without a valid envelope: %s", event, err.errors)
            return
        event_id, org_id = str(envelope["event_id"]), str(envelope["org_id"])
        try:
            counts = metrics.counts_for(event, payload)
        except (TypeError, ValueError, AttributeError) as err:
            log.warning("dropping %s %s with a malformed payload: %s", event, event_id, err)
            return
        mark = metrics.RUN_MARKS.get(event)
        with self.db.transaction() as tx:
            if not tx.first_time(event_id, f"reporting.{event}"):
                return
            if mark and payload.get("run_id") and not store.first_mark(
                    tx, org_id, str(payload["run_id"]), mark):
                return
            store.add_counts(tx, org_id, metrics.event_day(payload), counts)

    @event_handler("campaigns", "run_queued")
    def on_run_queued(self, payload):
        self.count("campaigns.run_queued", payload)

    @event_handler("campaigns", "run_progress")
    def on_run_progress(self, payload):
        self.count("campaigns.run_progress", payload)

    @event_handler("campaigns", "drafts_approved")
    def on_drafts_approved(self, payload):
        self.count("campaigns.drafts_approved", payload)

    @event_handler("campaigns", "drafts_rejected")
    def on_drafts_rejected(self, payload):
        self.count("campaigns.drafts_rejected", payload)

    @event_handler("campaigns", "run_completed")
    def on_run_completed(self, payload):
        self.count("campaigns.run_completed", payload)

    @event_handler("messaging", "communications_sent")
    def on_communications_sent(self, payload):
        self.count("messaging.communications_sent", payload)

    @event_handler("messaging", "reply_received")
    def on_reply_received(self, payload):
        self.count("messaging.reply_received", payload)

    @rpc
    def analytics(self, ctx, query=None):
        """Counts for the caller's organization: {totals, by_channel, by_campaign, by_day}."""
        ctx = context(ctx)
        filters = as_filters(load(AnalyticsQuery(), query or {}))
        with self.db.transaction() as tx:
            rows = store.grouped_counts(tx, ctx["org_id"], filters)
        answer = metrics.summarize(rows)
        answer["filters"] = {
            "from": filters["from"].isoformat() if filters["from"] else None,
            "to": filters["to"].isoformat() if filters["to"] else None,
            "channel": filters["channel"],
            "campaign_id": str(filters["campaign_id"]) if filters["campaign_id"] else None,
            "run_id": str(filters["run_id"]) if filters["run_id"] else None,
            "include_test": filters["include_test"],
        }
        return answer
