"""Sending approved drafts: one communication per draft (unique on the draft, so redelivery never
sends twice), a last-moment reachability check, SMTP delivery, and one `communications_sent`
event per batch.

The order of commits is the point. Communications are committed `queued`, then `sending`
before any SMTP traffic, then `sent`/`failed` together with the event. A crash while `sending`
leaves the row in that state as evidence; nothing ever re-sends a `sending` row on its own."""
import logging
import secrets
import uuid
from collections import defaultdict

from services.messaging import sending, settings, store

log = logging.getLogger(__name__)


REACHABILITY_RETRY_SECONDS = 60


def new_token():
    return secrets.token_hex(6)


def accept_drafts(tx, payload):
    """Create the batch's communications and threads; return (queued_ids, immediate_results)
    where immediate results are failures decided before any sending (no setup, wrong channel)."""
    org_id = payload["org_id"]
    row = settings.load(tx, org_id)
    channel = payload["channel"]
    ready = settings.readiness(row, channel)
    error = None
    if channel != "email":
        error = f"sending over {channel} is not available yet"
    elif not ready["ready"]:
        error = "email setup incomplete: " + ", ".join(ready["missing"])
    sender_email = row["sender_email"]
    new_rows, threads = [], {}
    for draft in payload["drafts"]:
        comm_id = str(uuid.uuid4())
        thread_id = str(uuid.uuid4())
        new_rows.append({
            "id": comm_id, "org_id": org_id, "thread_id": thread_id,
            "draft_id": str(draft["draft_id"]), "channel": channel,
            "status": "failed" if error else "queued", "error": error,
            "is_test": payload["is_test"], "campaign_id": payload.get("campaign_id"),
            "run_id": payload.get("run_id"), "contact_id": draft.get("contact_id"),
            "from_name": row["sender_name"], "from_address": sender_email,
            "to_name": draft.get("to_name"), "to_address": draft["to_address"],
            "subject": draft.get("subject"), "body": draft.get("body"),
            "message_id": sending.message_id(comm_id, sender_email) if sender_email else None,
            "reply_token": new_token(), "bounce_token": new_token(),
        })
        # Campaign mail starts a new thread per message; replies join it.
        threads[thread_id] = {"id": thread_id, "org_id": org_id, "channel": channel,
                              "contact_id": draft.get("contact_id"),
                              "campaign_id": payload.get("campaign_id"),
                              "run_id": payload.get("run_id"), "is_test": payload["is_test"],
                              "subject": draft.get("subject")}
    inserted = store.insert_outbound(tx, new_rows)
    store.insert_threads(tx, [threads[str(r["thread_id"])] for r in inserted])
    by_id = {r["id"]: r for r in new_rows}
    queued, immediate = [], []
    for r in inserted:
        full = by_id[str(r["id"])]
        if full["status"] == "queued":
            queued.append(full["id"])
        else:
            immediate.append(result_of(full, "failed", error))
    if immediate:
        emit_results(tx, org_id, immediate_groups(immediate))
    return queued


def result_of(row, status, error):
    return {"draft_id": _s(row["draft_id"]), "communication_id": _s(row["id"]),
            "run_id": _s(row["run_id"]), "campaign_id": _s(row["campaign_id"]),
            "status": status, "error": error,
            "_channel": row["channel"], "_is_test": row["is_test"]}


def immediate_groups(results):
    groups = defaultdict(list)
    for r in results:
        groups[(r["_channel"], r["_is_test"])].append(r)
    return groups


def emit_results(tx, org_id, groups):
    for (channel, is_test), results in groups.items():
        clean = [{k: v for k, v in r.items() if not k.startswith("_")} for r in results]
        tx.emit("communications_sent", {"org_id": org_id, "results": clean,
                                        "channel": channel, "is_test": is_test})


def deliver(db, org_id, ids, reachable, secret_key, sleep=None):
    """Send the queued communications among `ids`. `reachable(channel, identifiers)` is the
    contacts service's last check; if it cannot answer, the rows stay queued for the sweep."""
    if not ids:
        return []
    with db.transaction() as tx:
        candidates = store.claim_queued(tx, org_id, ids)
    if not candidates:
        return []
    addresses = sorted({c["to_address"].lower() for c in candidates})
    try:
        answer = reachable("email", addresses)
    except Exception:
        # Never send without the last check: wait for the sweep, a minute from now.
        log.exception("contacts.reachable failed; %s communications stay queued", len(candidates))
        with db.transaction() as tx:
            store.postpone(tx, [c["id"] for c in candidates], REACHABILITY_RETRY_SECONDS,
                           "waiting for the contacts service's reachability check")
        return []
    answer = {k.lower(): v for k, v in (answer or {}).items()}

    final = []
    with db.transaction() as tx:
        rows = store.claim_queued(tx, org_id, [c["id"] for c in candidates])
        if not rows:
            return []
        settings_row = settings.load(tx, org_id)
        blocked = [r for r in rows if not answer.get(r["to_address"].lower(), False)]
        go = [r for r in rows if answer.get(r["to_address"].lower(), False)]
        store.set_status(tx, [r["id"] for r in blocked], "failed", error="unsubscribed")
        final += [result_of(r, "failed", "unsubscribed") for r in blocked]
        # Committed before any SMTP traffic: a crash from here on leaves `sending` as evidence.
        store.set_status(tx, [r["id"] for r in go], "sending", attempts_increment=1)
    if not go:
        with db.transaction() as tx:
            emit_results(tx, org_id, immediate_groups(final))
        return final

    try:
        smtp = settings.smtp_settings(settings_row, secret_key)
    except Exception as err:
        smtp, config_error = None, getattr(err, "message", str(err))
    reply_domain = settings_row["reply_domain"]
    outcomes = {}
    if smtp is None:
        outcomes = {r["id"]: ("permanent", config_error) for r in go}
    else:
        items = [(sending.build(r, reply_domain), sending.envelope_sender(r, reply_domain),
                  r["to_address"], r["id"]) for r in go]
        kwargs = {"sleep": sleep} if sleep else {}
        for key, outcome, error in sending.send_batch(sending.SmtpConnection(smtp), items, **kwargs):
            outcomes[key] = (outcome, error)

    with db.transaction() as tx:
        for r in go:
            outcome, error = outcomes[r["id"]]
            if outcome == "sent":
                store.set_status(tx, [r["id"]], "sent", sent=True)
                final.append(result_of(r, "sent", None))
            elif outcome == "transient" and r["attempts"] + 1 < sending.MAX_ATTEMPTS:
                store.set_status(tx, [r["id"]], "queued", error=error,
                                 next_attempt_seconds=sending.requeue_delay(r["attempts"] + 1))
            else:
                store.set_status(tx, [r["id"]], "failed", error=error)
                final.append(result_of(r, "failed", error))
        store.touch_threads(tx, [r["thread_id"] for r in go])
        if final:
            emit_results(tx, org_id, immediate_groups(final))
    return final


def _s(value):
    return None if value is None else str(value)

