"""The rules about campaign runs: statuses and transitions (one table), starting a run after
preflight, the run worker that pages the audience and drafts each page, completion, cancel.

The worker is restartable: the audience cursor is stored on the run after every page (in the
same transaction as that page's drafts and skips), and drafts are unique per run and recipient,
so a redelivered `run_queued` resumes where the last committed page ended and duplicates nothing.
One event works one page (`run_queued` the first, `run_page` each next one), under a lease."""
import datetime
import logging
import time
import uuid

from services.campaigns import drafts, preflight, store
from services.common.errors import Conflict, DomainError, NotFound

log = logging.getLogger(__name__)

QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED = (
    "queued", "running", "completed", "failed", "cancelled")

# The one table of run statuses: status -> the statuses it may move to.
TRANSITIONS = {
    QUEUED: {RUNNING, CANCELLED, FAILED},
    RUNNING: {COMPLETED, FAILED, CANCELLED},
    COMPLETED: set(),
    FAILED: set(),
    CANCELLED: set(),
}
STATUSES = tuple(TRANSITIONS)
FINAL = (COMPLETED, FAILED, CANCELLED)
PAGE_SIZE = 1000
SKIPS_SHOWN = 1000
LEASE = "5 minutes"    # a worker's claim on a page of a run, renewed while it writes
RENEW_EVERY = 30       # seconds between renewals (well inside LEASE: one model call may be slow)
IDLE_AFTER = "2 minutes"  # a running run nobody leased for this long lost its event: re-queue it


class PeerUnavailable(Exception):
    """Another service did not answer (down, slow). The run stays as it is and is resumed later
    by the stalled-run sweep instead of failing for a passing outage."""


def may(status, to):
    return to in TRANSITIONS.get(status, ())


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def system_ctx(org_id):
    return {"org_id": str(org_id), "user_id": None, "role": "system"}


def move(tx, run, to, **values):
    if not may(run["status"], to):
        raise Conflict(f"a {run['status']} run cannot become {to}", status=run["status"])
    if to in FINAL:
        values["finished_at"] = now()
    return store.set_run(tx, run["org_id"], run["id"], status=to, **values)


# --- starting --------------------------------------------------------------------------------

def snapshot(tx, org_id, campaign):
    """What the run is made with, frozen: later edits to the campaign, goal, template or agents
    apply to the next run, never to drafts in flight."""
    def pick(table, row_id, keys):
        row = store.get(tx, table, org_id, row_id) if row_id else None
        return {k: (str(row[k]) if k == "id" else row[k]) for k in keys} if row else None

    agent_keys = ("id", "type", "name", "title", "model", "provider", "base_url", "api_key_env",
                  "voice", "instructions")
    return {
        "campaign_name": campaign["name"],
        "goal": pick("goals", campaign["goal_id"], ("id", "name", "description")),
        "template": pick("templates", campaign["template_id"],
                         ("id", "name", "subject", "preheader", "body")),
        "writer": pick("agents", campaign["writer_agent_id"], agent_keys),
        "reviewer": pick("agents", campaign["reviewer_agent_id"], agent_keys),
    }


def start(tx, ctx, campaign, run_type, facts):
    """Preflight, then a `queued` run and its run_queued event (the worker takes it from there).
    A campaign has at most one live run queued or running (409 naming it); test runs may overlap,
    they only reach the organization's test recipients."""
    if run_type == "live":
        refuse_second_live_run(tx, ctx, campaign)
    preflight.require_ready(campaign, run_type, facts)
    run = store.insert_run(tx, ctx["org_id"], {
        "campaign_id": campaign["id"], "channel": campaign["channel"], "run_type": run_type,
        "status": QUEUED, "segment_id": campaign["segment_id"] if run_type == "live" else None,
        "version": campaign["version"], "instructions": campaign["instructions"],
        "snapshot": snapshot(tx, ctx["org_id"], campaign), "created_by": ctx.get("user_id"),
    })
    if run is None:  # another start won the race (the unique index, not only the check above)
        refuse_second_live_run(tx, ctx, campaign)
        raise Conflict("this campaign already has a live run in progress")
    tx.emit("run_queued", {"org_id": ctx["org_id"], "run_id": str(run["id"]),
                           "campaign_id": str(campaign["id"]), "channel": run["channel"],
                           "run_type": run_type})
    return run


def refuse_second_live_run(tx, ctx, campaign):
    active = store.active_live_run(tx, ctx["org_id"], campaign["id"])
    if active:
        raise Conflict(f"this campaign already has a live run in progress ({active['id']}, "
                       f"{active['status']}); wait for it to finish or cancel it first",
                       active_run_id=str(active["id"]), active_run_status=active["status"])


# --- the audience ----------------------------------------------------------------------------

ADDRESS_FIELD = {"email": "email", "sms": "phone", "phone": "phone"}
MISSING_REASON = {"email": "no_email", "sms": "no_phone", "phone": "no_phone"}


def split_page(contacts, channel):
    """A resolve_segment page -> (recipients, skips). Contacts has already dropped addresses of
    unsubscribed contacts; a contact without the channel's address is skipped here too."""
    recipients, skips = [], []
    field = ADDRESS_FIELD[channel]
    for c in contacts:
        reason = c.get("skip_reason")
        if not reason and not c.get(field):
            reason = MISSING_REASON[channel]
        if reason:
            skips.append({"recipient_key": str(c["id"]), "contact_id": str(c["id"]), "reason": reason})
            continue
        recipients.append({
            "recipient_key": str(c["id"]), "contact_id": str(c["id"]), "to_address": c[field],
            "to_name": c.get("name") or "",
            "contact": {k: c.get(k) for k in ("id", "name", "first_name", "last_name", "email",
                                              "phone", "timezone", "custom")},
        })
    return recipients, skips


def test_audience(organization, channel):
    """A test run writes only to the organization's test recipients (the owner by default)."""
    recipients, skips = [], []
    field = ADDRESS_FIELD[channel]
    for r in organization.get("test_recipients") or []:
        address = r.get(field)
        key = f"test:{(address or r.get('email') or r.get('name') or '').lower()}"
        if not address:
            skips.append({"recipient_key": key, "contact_id": None, "reason": MISSING_REASON[channel]})
            continue
        recipients.append({"recipient_key": key, "contact_id": None, "to_address": address,
                           "to_name": r.get("name") or "",
                           "contact": {"name": r.get("name") or "", "email": r.get("email"),
                                       "phone": r.get("phone"), "custom": {}}})
    return recipients, skips


# --- the worker ------------------------------------------------------------------------------

class LeaseLost(Exception):
    """Our lease on the run expired and another worker took it: drop the page, write nothing."""


class Lease:
    """This worker's claim on one page of a run: renewed while the page is being written (a slow
    model may take minutes), so the stalled-run sweep never re-queues a run still being worked."""

    def __init__(self, db, org_id, run_id):
        self.db, self.org_id, self.run_id = db, org_id, run_id
        self.token = str(uuid.uuid4())
        self.renewed = time.monotonic()

    def claim(self, cursor=None, check_cursor=False):
        with self.db.transaction() as tx:
            run = store.claim_run(tx, self.org_id, self.run_id, self.token, LEASE, cursor,
                                  check_cursor)
            if run is not None and run["status"] == QUEUED:
                run = move(tx, run, RUNNING, started_at=now())
        self.renewed = time.monotonic()
        return run

    def renew(self, force=False):
        """Extend the lease every RENEW_EVERY seconds; LeaseLost when it is no longer ours, and
        the run's status (a cancelled run stops writing at once)."""
        if not force and time.monotonic() - self.renewed < RENEW_EVERY:
            return RUNNING
        with self.db.transaction() as tx:
            status = store.renew_lease(tx, self.org_id, self.run_id, self.token, LEASE)
        if status is None:
            raise LeaseLost(f"run {self.run_id}: lease taken over")
        self.renewed = time.monotonic()
        return status

    def release(self):
        with self.db.transaction() as tx:
            store.release_lease(tx, self.org_id, self.run_id, self.token)


def page_event(run, cursor):
    return {"org_id": str(run["org_id"]), "run_id": str(run["id"]),
            "campaign_id": str(run["campaign_id"]), "channel": run["channel"],
            "run_type": run["run_type"], "cursor": cursor}


def work_page(db, peers, org_id, run_id, cursor=None, from_event_cursor=False,
              page_size=PAGE_SIZE):
    """Work ONE page of a run's audience, then hand the next page to a `run_page` event emitted in
    the page's own transaction, so a long run never holds a worker for its whole audience.

    `run_queued` (a new run, or one the sweep re-queued) works the page at the run's stored
    cursor; `run_page` (`from_event_cursor`) only the page at its cursor: when the run has moved
    past it (a redelivery, a second worker) the event changes nothing. A page is claimed with a
    lease (one worker per run at a time); its drafts, skips, the new cursor and the next event
    commit together, only if the run still stands where the page began. Returns the run."""
    ctx = system_ctx(org_id)
    lease = Lease(db, org_id, run_id)
    run = lease.claim(cursor, check_cursor=from_event_cursor)
    if run is None:  # final, cancelled, leased by a live worker, or already past this cursor
        with db.transaction() as tx:
            run = store.get_run(tx, org_id, run_id)
            if run and run["status"] == RUNNING and run["audience_exhausted"]:
                run = finish_if_done(tx, org_id, run_id)
        return run
    try:
        organization = peers.get_organization(ctx)
        if run["run_type"] == "test":
            recipients, skips = test_audience(organization, run["channel"])
            next_cursor = None
        else:
            answer = peers.resolve_segment(ctx, {
                "segment_id": str(run["segment_id"]), "channel": run["channel"],
                "after": run["cursor"], "limit": page_size})
            recipients, skips = split_page(answer.get("contacts") or [], run["channel"])
            next_cursor = answer.get("next_cursor")
            if next_cursor is not None and next_cursor == run["cursor"]:
                next_cursor = None  # a cursor that does not move would loop forever
        lease.renew(force=True)
        with db.transaction() as tx:
            done = drafts.already_drafted(tx, run, recipients)
        rows = drafts.write_page(run, organization, recipients, done,
                                 heartbeat=lambda: lease.renew() == RUNNING)
        with db.transaction() as tx:
            # The row lock serializes whoever else got this run; a page whose run moved on
            # (cursor changed, cancelled, lease taken over) is dropped, nothing is written.
            current = store.get_run(tx, org_id, run_id, lock=True)
            if current["status"] != RUNNING or current["cursor"] != run["cursor"] \
                    or current["audience_exhausted"] or str(current["lease_token"]) != lease.token:
                log.info("run %s: page at %s dropped (run %s, moved on or lease lost)", run_id,
                         run["cursor"], current["status"])
                store.release_lease(tx, org_id, run_id, lease.token)
                return current
            skipped = store.insert_skips(tx, org_id, run["id"], skips)
            drafted = drafts.store_page(tx, run, rows)
            exhausted = next_cursor is None
            current = store.set_run(tx, org_id, run_id, cursor=next_cursor or run["cursor"],
                                    audience_exhausted=exhausted, lease_until=None,
                                    lease_token=None)
            tx.emit("run_progress", {
                "org_id": str(org_id), "run_id": str(run["id"]),
                "campaign_id": str(run["campaign_id"]), "channel": run["channel"],
                "is_test": run["run_type"] == "test",
                "targeted": skipped + drafted, "skipped": skipped, "drafted": drafted})
            if exhausted:
                return finish_if_done(tx, org_id, run_id)
            tx.emit("run_page", page_event(run, next_cursor))
            return current
    except LeaseLost as err:
        log.warning("%s; this worker's page is dropped", err)
        return None
    except PeerUnavailable as err:
        log.warning("run %s paused: %s; the stalled-run sweep re-queues it", run_id, err)
        lease.release()
        return None
    except DomainError as err:
        return fail(db, org_id, run_id, err.message or type(err).__name__)
    except Exception:
        log.exception("run %s failed", run_id)
        return fail(db, org_id, run_id, "internal error while drafting; see the campaigns log")


def work(db, peers, org_id, run_id, page_size=PAGE_SIZE):
    """Every page of a run in this process, one after another (scripts and tests; the service
    works one page per event)."""
    run = work_page(db, peers, org_id, run_id, page_size=page_size)
    while run is not None and run["status"] == RUNNING and not run["audience_exhausted"]:
        run = work_page(db, peers, org_id, run_id, run["cursor"], True, page_size)
    return run


def requeue_expired(tx, idle=IDLE_AFTER):
    """The stalled-run sweep: re-queue runs nobody works (their lease expired, or none was taken
    for `idle`). Clearing the lease and touching updated_at keeps another replica's sweep from
    queueing the same run again. Returns the run ids re-queued."""
    requeued = []
    for run in store.expired_runs(tx, idle):
        store.set_run(tx, run["org_id"], run["id"], lease_until=None, lease_token=None)
        tx.emit("run_queued", {"org_id": str(run["org_id"]), "run_id": str(run["id"]),
                               "campaign_id": str(run["campaign_id"]),
                               "channel": run["channel"], "run_type": run["run_type"]})
        requeued.append(str(run["id"]))
    return requeued


def fail(db, org_id, run_id, error):
    with db.transaction() as tx:
        run = store.get_run(tx, org_id, run_id, lock=True)
        if run and may(run["status"], FAILED):
            run = move(tx, run, FAILED, error=error, lease_until=None, lease_token=None)
        return run


def completed_payload(tx, run):
    counts = public_counts(store.run_counts(tx, run["org_id"], run["id"]))
    return {"org_id": str(run["org_id"]), "run_id": str(run["id"]),
            "campaign_id": str(run["campaign_id"]), "channel": run["channel"],
            "is_test": run["run_type"] == "test", "status": run["status"], "counts": counts}


def finish_if_done(tx, org_id, run_id):
    """A running run whose audience is exhausted and whose every draft is final completes.
    Cheap on every communications_sent: an unlocked look first (most runs are still paging or
    waiting), then under the run's lock (so two last results committing at once cannot both miss
    the end) an EXISTS over drafts_run_status, never a count of the run's drafts; the counts are
    computed once, for run_completed."""
    run = store.get_run(tx, org_id, run_id)
    if run is None or run["status"] != RUNNING or not run["audience_exhausted"]:
        return run
    run = store.get_run(tx, org_id, run_id, lock=True)
    if run["status"] != RUNNING or store.has_open_drafts(tx, org_id, run_id):
        return run
    run = move(tx, run, COMPLETED)
    tx.emit("run_completed", completed_payload(tx, run))
    return run


def cancel(tx, ctx, run_id):
    run = store.get_run(tx, ctx["org_id"], run_id, lock=True)
    if run is None:
        raise NotFound("run not found", run_id=str(run_id))
    run = move(tx, run, CANCELLED)
    drafts.reject_open(tx, ctx, run, "run cancelled")
    return run


COUNT_KEYS = ("targeted", "skipped", "drafted", "approved", "rejected", "sent", "failed", "replied")


def public_counts(counts):
    out = {k: counts[k] for k in COUNT_KEYS}
    out["pending_approval"] = counts["pending_approval"]
    out["flagged"] = counts["flagged"]
    return out


def detail(tx, run):
    out = dict(run)
    for internal in ("cursor", "lease_until", "lease_token"):
        out.pop(internal, None)
    out["counts"] = public_counts(store.run_counts(tx, run["org_id"], run["id"]))
    out["skips"] = store.run_skips(tx, run["org_id"], run["id"], SKIPS_SHOWN)
    out["skips_by_reason"] = store.skips_by_reason(tx, run["org_id"], run["id"])
    return out


def record_reply(tx, org_id, payload):
    run_id = payload.get("run_id")
    if not run_id:
        return None
    run = store.get_run(tx, org_id, run_id)
    if run is None:
        return None
    thread = payload.get("thread_id") or payload.get("communication_id")
    store.add_reply(tx, org_id, run["id"], str(thread), payload.get("contact_id"))
    if payload.get("contact_id"):
        store.set_replied(tx, org_id, run["id"], payload["contact_id"])
    return run
