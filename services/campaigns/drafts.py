"""The rules about drafts: their statuses and allowed transitions (one table), writing and reviewing
them for a page of recipients, approval (one, or all of a run, in batches), rejection, retry, and
the outcome of sending reported back by messaging."""
import datetime

from services.campaigns import store
from services.campaigns.agents import AgentFailure, reviewer, writer
from services.common.errors import Conflict, NotFound

GENERATING, PENDING, APPROVED, SENDING, SENT, REJECTED, FAILED = (
    "generating", "pending_approval", "approved", "sending", "sent", "rejected", "failed")

# The one table of draft statuses: status -> the statuses it may move to.
TRANSITIONS = {
    GENERATING: {PENDING, APPROVED, FAILED},
    PENDING: {APPROVED, REJECTED},
    APPROVED: {SENDING, SENT, FAILED, REJECTED},
    SENDING: {SENT, FAILED},
    SENT: set(),
    REJECTED: set(),
    FAILED: {GENERATING},
}
STATUSES = tuple(TRANSITIONS)
FINAL = (SENT, REJECTED, FAILED)
OPEN = (GENERATING, PENDING, APPROVED, SENDING)
# What the product shows: processing, awaiting a person, or final.
CLASSES = {GENERATING: "processing", APPROVED: "processing", SENDING: "processing",
           PENDING: "awaiting_action", SENT: "final", REJECTED: "final", FAILED: "final"}
ACTIONS = {"approve": APPROVED, "reject": REJECTED, "retry": GENERATING}
BATCH = 500  # drafts per drafts_approved event


def may(status, to):
    return to in TRANSITIONS.get(status, ())


def allowed_actions(status):
    return [action for action, to in ACTIONS.items() if may(status, to)]


def may_retry(draft):
    # Only drafts that failed before reaching messaging (writer, reviewer) are written again:
    # messaging keeps exactly one communication per draft, so a send failure is final here.
    return draft["status"] == FAILED and draft.get("approved_at") is None


def actions_for(draft):
    return [a for a in allowed_actions(draft["status"]) if a != "retry" or may_retry(draft)]


def require(draft, to, action):
    if not may(draft["status"], to):
        raise Conflict(f"a {draft['status']} draft cannot be {action}",
                       status=draft["status"], allowed_actions=allowed_actions(draft["status"]))


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def actor_of(ctx):
    return f"user:{ctx['user_id']}" if ctx.get("user_id") else "system"


# --- writing ---------------------------------------------------------------------------------

def brief_for(run, organization):
    snap = run["snapshot"]
    return {
        "channel": run["channel"],
        "organization": {"name": organization.get("name") or "",
                         "description": organization.get("description") or ""},
        "goal": snap.get("goal") or {},
        "instructions": run["instructions"],
        "template": snap.get("template"),
    }


def auto_approves(run, organization):
    # The setting is documented for campaign emails; SMS and calls always wait for a person.
    return run["channel"] == "email" and bool(organization.get("auto_approve_campaign_emails"))


def compose(run, base_brief, contact, auto_approve):
    """Writer then reviewer for one recipient: the draft's content, verdict, status and the
    history of how it got there."""
    snap = run["snapshot"]
    writer_agent, reviewer_agent = snap.get("writer") or {}, snap.get("reviewer")
    brief = dict(base_brief, contact=contact)
    out = {"subject": "", "preheader": "", "body": "", "verdict": None, "review_reasons": [],
           "error": None}
    steps = [(None, GENERATING, f"agent:{writer_agent.get('name', 'writer')}", "writing")]
    try:
        out.update(writer.write(writer_agent, brief))
    except AgentFailure as err:
        out.update(status=FAILED, error=f"writer failed: {err}")
        steps.append((GENERATING, FAILED, f"agent:{writer_agent.get('name', 'writer')}", out["error"]))
        return out, steps
    if reviewer_agent:
        try:
            verdict = reviewer.review(reviewer_agent, run["channel"], out, brief)
        except AgentFailure as err:
            out.update(status=FAILED, error=f"reviewer failed: {err}")
            steps.append((GENERATING, FAILED, f"agent:{reviewer_agent.get('name')}", out["error"]))
            return out, steps
        out.update(verdict=verdict["verdict"], review_reasons=verdict["reasons"])
        review_note = f"review: {verdict['verdict']}" + (
            f" ({'; '.join(verdict['reasons'])})" if verdict["reasons"] else "")
    else:
        review_note = "no reviewer for this channel"
    if auto_approve and out["verdict"] != reviewer.FLAG:
        out["status"] = SENDING
        steps += [(GENERATING, APPROVED, "system", f"{review_note}; auto-approved (organization setting)"),
                  (APPROVED, SENDING, "system", "handed to messaging")]
    else:
        out["status"] = PENDING
        steps.append((GENERATING, PENDING, f"agent:{(reviewer_agent or {}).get('name', 'system')}",
                      review_note))
    return out, steps


def already_drafted(tx, run, recipients):
    return store.drafted_keys(tx, run["org_id"], run["id"], [r["recipient_key"] for r in recipients])


def write_page(run, organization, recipients, skip_keys=(), heartbeat=None):
    """Writer then reviewer for each recipient of a page, outside any transaction (a model
    endpoint may take seconds per contact). Returns draft rows ready for store_page.
    `heartbeat()` is called before each recipient (the worker renews its lease there); when it
    answers False (the run was cancelled) the page stops being written."""
    base = brief_for(run, organization)
    auto = auto_approves(run, organization)
    rows = []
    for rcpt in recipients:
        if rcpt["recipient_key"] in skip_keys:
            continue
        if heartbeat is not None and not heartbeat():
            break
        out, steps = compose(run, base, rcpt["contact"], auto)
        rows.append({
            "id": store.new_id(), "org_id": run["org_id"], "run_id": run["id"],
            "campaign_id": run["campaign_id"], "channel": run["channel"],
            "is_test": run["run_type"] == "test", "recipient_key": rcpt["recipient_key"],
            "contact_id": rcpt.get("contact_id"), "to_address": rcpt["to_address"],
            "to_name": rcpt.get("to_name") or "", "contact": rcpt["contact"],
            "subject": out["subject"], "preheader": out["preheader"], "body": out["body"],
            "status": out["status"], "verdict": out["verdict"],
            "review_reasons": out["review_reasons"], "error": out["error"],
            "approved_at": now() if out["status"] == SENDING else None,
            "steps": steps,
        })
    return rows


def store_page(tx, run, rows):
    """Bulk insert written drafts with their history; a recipient already drafted in this run is
    left alone (unique per run and recipient), so a redelivered page duplicates nothing. Approved
    drafts leave as drafts_approved. Returns the number of drafts created."""
    steps = {r["recipient_key"]: r["steps"] for r in rows}
    inserted = store.insert_drafts(tx, rows)
    store.add_history(tx, run["org_id"], [
        (d["id"],) + step for d in inserted for step in steps[d["recipient_key"]]])
    emit_approved(tx, run, [d for d in inserted if d["status"] == SENDING])
    return len(inserted)


def emit_approved(tx, run, drafts):
    for i in range(0, len(drafts), BATCH):
        tx.emit("drafts_approved", {
            "org_id": str(run["org_id"]), "run_id": str(run["id"]),
            "campaign_id": str(run["campaign_id"]), "channel": run["channel"],
            "is_test": run["run_type"] == "test",
            "drafts": [{"draft_id": str(d["id"]),
                        "contact_id": str(d["contact_id"]) if d.get("contact_id") else None,
                        "to_address": d["to_address"], "to_name": d["to_name"],
                        "subject": d["subject"], "body": d["body"],
                        "preheader": d.get("preheader") or "", "attempt": d.get("attempt") or 1}
                       for d in drafts[i:i + BATCH]],
        })


def emit_rejected(tx, run, draft_ids):
    for i in range(0, len(draft_ids), BATCH):
        tx.emit("drafts_rejected", {
            "org_id": str(run["org_id"]), "run_id": str(run["id"]),
            "campaign_id": str(run["campaign_id"]), "channel": run["channel"],
            "is_test": run["run_type"] == "test",
            "draft_ids": [str(x) for x in draft_ids[i:i + BATCH]]})


# --- people acting on drafts -----------------------------------------------------------------

def _draft_and_run(tx, ctx, draft_id):
    draft = store.get_draft(tx, ctx["org_id"], draft_id, lock=True)
    if draft is None:
        raise NotFound("draft not found", draft_id=str(draft_id))
    run = store.get_run(tx, ctx["org_id"], draft["run_id"])
    return draft, run


def _approve(tx, ctx, run, drafts, note):
    store.set_drafts(tx, ctx["org_id"], [{"id": d["id"], "status": SENDING, "approved": True}
                                         for d in drafts])
    actor = actor_of(ctx)
    store.add_history(tx, ctx["org_id"], [
        entry for d in drafts for entry in (
            (d["id"], d["status"], APPROVED, actor, note),
            (d["id"], APPROVED, SENDING, "system", "handed to messaging"))])
    emit_approved(tx, run, drafts)


def approve(tx, ctx, draft_id, note=""):
    draft, run = _draft_and_run(tx, ctx, draft_id)
    require(draft, APPROVED, "approved")
    _approve(tx, ctx, run, [draft], note or "approved")
    return store.get_draft(tx, ctx["org_id"], draft_id)


def approve_batch(tx, ctx, run):
    """Approve up to BATCH pending drafts of a run; the caller loops, one transaction a batch."""
    batch = store.drafts_in_status(tx, ctx["org_id"], run["id"], [PENDING], BATCH)
    if batch:
        _approve(tx, ctx, run, batch, "approved with the whole run")
    return len(batch)


def reject(tx, ctx, draft_id, note=""):
    draft, run = _draft_and_run(tx, ctx, draft_id)
    require(draft, REJECTED, "rejected")
    store.set_drafts(tx, ctx["org_id"], [{"id": draft["id"], "status": REJECTED}])
    store.add_history(tx, ctx["org_id"], [(draft["id"], draft["status"], REJECTED, actor_of(ctx),
                                           note or "rejected")])
    emit_rejected(tx, run, [draft["id"]])
    return run


def reject_open(tx, ctx, run, note):
    """Reject every draft of a run still waiting (cancelled runs send nothing more)."""
    total = 0
    while True:
        batch = store.drafts_in_status(tx, ctx["org_id"], run["id"], [GENERATING, PENDING], BATCH)
        if not batch:
            return total
        store.set_drafts(tx, ctx["org_id"], [{"id": d["id"], "status": REJECTED} for d in batch])
        store.add_history(tx, ctx["org_id"], [(d["id"], d["status"], REJECTED, actor_of(ctx), note)
                                              for d in batch])
        emit_rejected(tx, run, [d["id"] for d in batch])
        total += len(batch)


def check_retry(draft, run):
    """May this draft be written again? Conflict saying why not."""
    require(draft, GENERATING, "retried")
    if not may_retry(draft):
        raise Conflict("this draft failed while sending; messaging keeps one communication per "
                       "draft, so it cannot be sent again from here", error=draft["error"])
    if run["status"] == "cancelled":
        raise Conflict("the run was cancelled; its drafts cannot be retried", run_status="cancelled")


def read_for_retry(tx, ctx, draft_id):
    """Step 1 of a retry (short transaction, no lock): the draft and its run, checked."""
    draft = store.get_draft(tx, ctx["org_id"], draft_id)
    if draft is None:
        raise NotFound("draft not found", draft_id=str(draft_id))
    run = store.get_run(tx, ctx["org_id"], draft["run_id"])
    check_retry(draft, run)
    return draft, run


def rewrite(draft, run, organization):
    """Step 2, outside any transaction (the writer and reviewer may be a slow model)."""
    return compose(run, brief_for(run, organization), draft["contact"],
                   auto_approves(run, organization))


def store_retry(tx, ctx, seen, composed):
    """Step 3: under the draft's row lock, store the new attempt only if the draft is still the
    failed attempt that was read (another retry, or anything else, may have changed it while
    the model was writing: 409, nothing overwritten)."""
    draft, run = _draft_and_run(tx, ctx, seen["id"])
    if draft["status"] != FAILED or draft["attempt"] != seen["attempt"]:
        raise Conflict("this draft changed while it was being written again (another retry?); "
                       "reload it", status=draft["status"], attempt=draft["attempt"])
    check_retry(draft, run)
    out, steps = composed
    store.set_drafts(tx, ctx["org_id"], [{
        "id": draft["id"], "status": out["status"], "error": out["error"], "retry": True,
        "approved": out["status"] == SENDING, "subject": out["subject"],
        "preheader": out["preheader"], "body": out["body"], "verdict": out["verdict"],
        "review_reasons": out["review_reasons"]}])
    store.add_history(tx, ctx["org_id"],
                      [(draft["id"], FAILED, GENERATING, actor_of(ctx), "retry")]
                      + [(draft["id"],) + s for s in steps[1:]])
    updated = store.get_draft(tx, ctx["org_id"], draft["id"])
    if updated["status"] == SENDING:
        emit_approved(tx, run, [updated])
    return updated


# --- what messaging reports ------------------------------------------------------------------

def record_sent(tx, org_id, results):
    """Apply communications_sent results; a result already applied changes nothing. Returns the
    run ids touched."""
    by_id = {str(r["draft_id"]): r for r in results if r.get("draft_id")}
    if not by_id:
        return set()
    changes, history, runs = [], [], set()
    for draft in store.drafts_by_ids(tx, org_id, list(by_id)):
        result = by_id[str(draft["id"])]
        to = SENT if result.get("status") == "sent" else FAILED
        if not may(draft["status"], to):
            continue
        error = None if to == SENT else (result.get("error") or "sending failed")
        communication_id = result.get("communication_id")
        changes.append({"id": draft["id"], "status": to, "error": error,
                        "communication_id": str(communication_id) if communication_id else None})
        history.append((draft["id"], draft["status"], to, "messaging",
                        f"communication {result.get('communication_id')}" if to == SENT else error))
        runs.add(str(draft["run_id"]))
    store.set_drafts(tx, org_id, changes)
    store.add_history(tx, org_id, history)
    return runs


def summary(draft):
    """A draft as lists show it: its class, what may be done with it, and the review."""
    out = dict(draft)
    out.pop("contact", None)
    out["class"] = CLASSES[draft["status"]]
    out["allowed_actions"] = actions_for(draft)
    out["review"] = {"verdict": draft["verdict"], "reasons": draft["review_reasons"]}
    return out


def view(tx, draft):
    out = summary(draft)
    out["contact"] = draft["contact"]
    out["history"] = store.history(tx, draft["org_id"], draft["id"])
    return out
