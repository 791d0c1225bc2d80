"""Sending approved drafts: one communication per draft (unique on the draft, so redelivery never
sends twice), a last-moment reachability check, delivery (email over SMTP, SMS through Twilio's
REST API), and one `communications_sent` event per batch.

The order of commits is the point. Communications are committed `queued`, then `sending`
before any provider traffic, then `sent`/`failed` together with the event. A crash while
`sending` leaves the row in that state as evidence (for SMS with Twilio's sid once Twilio
accepted it); nothing ever re-sends a `sending` row on its own.

SMS go from the organization's Twilio number to the recipient in E.164, in the thread of that
number pair, so an inbound SMS from the recipient (which finds the latest outbound SMS to it)
joins the same conversation."""
import logging
import secrets
import uuid
from collections import defaultdict

from services.messaging import providers, sending, settings, sms, store, webhooks

log = logging.getLogger(__name__)


REACHABILITY_RETRY_SECONDS = 60


def new_token():
    return secrets.token_hex(6)


def accept_drafts(tx, payload, secret_key=None):
    """Create the batch's communications and threads; return the ids left queued. Failures decided
    before any sending (no setup, a channel we cannot send on, not a phone number) are final at
    once and reported in a `communications_sent` event."""
    org_id = payload["org_id"]
    row = settings.load(tx, org_id)
    channel = payload["channel"]
    if channel == "sms":
        new_rows, threads = _sms_rows(tx, org_id, payload, row, secret_key)
    else:
        new_rows, threads = _email_rows(org_id, payload, row)
    inserted = store.insert_outbound(tx, new_rows)
    new_threads = {str(r["thread_id"]) for r in inserted} & set(threads)
    store.insert_threads(tx, [threads[t] for t in sorted(new_threads)])
    by_id = {r["id"]: r for r in new_rows}
    queued, immediate = [], []
    for r in inserted:
        full = by_id[str(r["id"])]
        if full["status"] == "queued":
            queued.append(full["id"])
        else:
            immediate.append(result_of(full, "failed", full["error"]))
    if immediate:
        emit_results(tx, org_id, immediate_groups(immediate))
    return queued


def _base_row(org_id, payload, draft, comm_id, thread_id, status, error):
    return {
        "id": comm_id, "org_id": org_id, "thread_id": thread_id,
        "draft_id": str(draft["draft_id"]), "channel": payload["channel"],
        "status": "failed" if error else status, "error": error,
        "is_test": payload["is_test"], "campaign_id": payload.get("campaign_id"),
        "run_id": payload.get("run_id"), "contact_id": draft.get("contact_id"),
        "to_name": draft.get("to_name"), "to_address": draft["to_address"],
        "subject": draft.get("subject"), "body": draft.get("body"),
        "message_id": None, "reply_token": None, "bounce_token": None,
    }


def _thread(org_id, payload, thread_id, channel, contact_id, subject):
    return {"id": thread_id, "org_id": org_id, "channel": channel, "contact_id": contact_id,
            "campaign_id": payload.get("campaign_id"), "run_id": payload.get("run_id"),
            "is_test": payload["is_test"], "subject": subject}


def _email_rows(org_id, payload, row):
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
        comm_id, thread_id = str(uuid.uuid4()), str(uuid.uuid4())
        r = _base_row(org_id, payload, draft, comm_id, thread_id, "queued", error)
        r.update({"from_name": row["sender_name"], "from_address": sender_email,
                  "message_id": sending.message_id(comm_id, sender_email) if sender_email else None,
                  "reply_token": new_token(), "bounce_token": new_token()})
        new_rows.append(r)
        # Campaign mail starts a new thread per message; replies join it.
        threads[thread_id] = _thread(org_id, payload, thread_id, channel, draft.get("contact_id"),
                                     draft.get("subject"))
    return new_rows, threads


def _sms_rows(tx, org_id, payload, row, secret_key):
    """SMS: from the organization's Twilio number to the recipient in E.164, in the thread of that
    number pair (the one an inbound SMS from the recipient joins), a new thread the first time."""
    twilio_row = store.provider_settings(tx, org_id, "twilio")
    ready = providers.readiness(row, twilio_row, "sms", secret_key)
    setup_error = None
    if not ready["ready"]:
        setup_error = "sms setup incomplete: " + ", ".join(ready["missing"])
    ours = ((twilio_row["config"] or {}).get("phone_number") if twilio_row else None)
    new_rows, threads, pair_threads = [], {}, {}
    for draft in payload["drafts"]:
        comm_id = str(uuid.uuid4())
        to = sms.e164(draft["to_address"])
        error = setup_error or (None if to else f"not a phone number: {draft['to_address']!r}")
        thread_id = None
        if to and not error:
            thread_id = pair_threads.get(to)
            if thread_id is None:
                previous = (store.latest_outbound_sms(tx, org_id, to, ours)
                            or store.latest_inbound_sms(tx, org_id, to, ours))
                if previous is not None:
                    thread_id = str(previous["thread_id"])
        if thread_id is None:
            thread_id = str(uuid.uuid4())
            threads[thread_id] = _thread(org_id, payload, thread_id, "sms",
                                         draft.get("contact_id"), None)
        if to and not error:
            pair_threads[to] = thread_id
        r = _base_row(org_id, payload, draft, comm_id, thread_id, "queued", error)
        r.update({"from_name": None, "from_address": ours, "to_address": to or draft["to_address"],
                  "subject": None})
        new_rows.append(r)
    return new_rows, threads


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


def deliver(db, org_id, ids, reachable, secret_key, sleep=None, sms_config=None):
    """Send the queued communications among `ids`. `reachable(channel, identifiers)` is the
    contacts service's last check; if it cannot answer, the rows stay queued for the sweep.
    `sms_config`: {api_base, public_base_url} for SMS through Twilio's REST API."""
    if not ids:
        return []
    with db.transaction() as tx:
        candidates = store.claim_queued(tx, org_id, ids)
    final = []
    for channel in sorted({c["channel"] for c in candidates}):
        group = [c for c in candidates if c["channel"] == channel]
        final += _deliver_channel(db, org_id, channel, group, reachable, secret_key, sleep,
                                  sms_config or {})
    return final


def _key(channel, address):
    return (address or "").lower() if channel == "email" else (address or "")


def _deliver_channel(db, org_id, channel, candidates, reachable, secret_key, sleep, sms_config):
    addresses = sorted({_key(channel, c["to_address"]) for c in candidates})
    try:
        answer = reachable(channel, addresses)
    except Exception:
        # Never send without the last check: wait for the sweep, a minute from now.
        log.exception("contacts.reachable failed; %s communications stay queued", len(candidates))
        with db.transaction() as tx:
            store.postpone(tx, org_id, [c["id"] for c in candidates], REACHABILITY_RETRY_SECONDS,
                           "waiting for the contacts service's reachability check")
        return []
    answer = {_key(channel, k): v for k, v in (answer or {}).items()}

    final = []
    with db.transaction() as tx:
        rows = store.claim_queued(tx, org_id, [c["id"] for c in candidates])
        if not rows:
            return []
        settings_row = settings.load(tx, org_id)
        twilio_row = store.provider_settings(tx, org_id, "twilio") if channel == "sms" else None
        blocked = [r for r in rows if not answer.get(_key(channel, r["to_address"]), False)]
        go = [r for r in rows if answer.get(_key(channel, r["to_address"]), False)]
        store.set_status(tx, org_id, [r["id"] for r in blocked], "failed", error="unsubscribed")
        final += [result_of(r, "failed", "unsubscribed") for r in blocked]
        # Committed before any provider traffic: a crash from here on leaves `sending` as evidence.
        store.set_status(tx, org_id, [r["id"] for r in go], "sending", attempts_increment=1)
    if not go:
        with db.transaction() as tx:
            emit_results(tx, org_id, immediate_groups(final))
        return final
    if channel == "sms":
        return final + _send_sms(db, org_id, go, twilio_row, secret_key, sleep, sms_config,
                                 already=final)
    return final + _send_email(db, org_id, go, settings_row, secret_key, sleep, already=final)


def _send_email(db, org_id, go, settings_row, secret_key, sleep, already):
    final = []
    try:
        smtp = settings.smtp_settings(settings_row, secret_key)
    except Exception as err:
        smtp, config_error = None, getattr(err, "message", str(err))
    reply_domain = settings_row["reply_domain"]
    outcomes = {}
    if smtp is None:
        outcomes = {r["id"]: ("permanent", config_error) for r in go}
    else:
        items = []
        for r in go:
            # One message that cannot be built fails alone; the rest of the batch is sent.
            try:
                items.append((sending.build(r, reply_domain), sending.envelope_sender(r, reply_domain),
                              r["to_address"], r["id"]))
            except (ValueError, TypeError) as err:
                log.warning("communication %s cannot be built as an email: %s", r["id"], err)
                outcomes[r["id"]] = ("permanent", f"the message cannot be built: {err}"[:500])
        kwargs = {"sleep": sleep} if sleep else {}
        if items:
            for key, outcome, error in sending.send_batch(sending.SmtpConnection(smtp), items, **kwargs):
                outcomes[key] = (outcome, error)

    with db.transaction() as tx:
        for r in go:
            outcome, error = outcomes[r["id"]]
            if outcome == "sent":
                store.set_status(tx, org_id, [r["id"]], "sent", sent=True)
                final.append(result_of(r, "sent", None))
            elif outcome == "transient" and r["attempts"] + 1 < sending.MAX_ATTEMPTS:
                store.set_status(tx, org_id, [r["id"]], "queued", error=error,
                                 next_attempt_seconds=sending.requeue_delay(r["attempts"] + 1))
            else:
                store.set_status(tx, org_id, [r["id"]], "failed", error=error)
                final.append(result_of(r, "failed", error))
        store.touch_threads(tx, org_id, [r["thread_id"] for r in go])
        if already or final:
            emit_results(tx, org_id, immediate_groups(already + final))
    return final


def _send_sms(db, org_id, go, twilio_row, secret_key, sleep, sms_config, already):
    """POST each message to Twilio. Each accepted message's sid is committed as soon as Twilio
    answers (still `sending`), so a crash mid-batch leaves the sid as evidence and status
    callbacks find the row; the batch's final states and its event are committed at the end."""
    creds = sms.credentials(twilio_row, providers.secrets_of(twilio_row, secret_key)) \
        if twilio_row else None
    config = (twilio_row["config"] or {}) if twilio_row else {}
    outcomes = {}
    if creds is None:
        error = "sms setup incomplete: Twilio credentials are missing or unreadable"
        outcomes = {r["id"]: sms.Outcome("permanent", None, None, error, None) for r in go}
    else:
        account, user, password = creds
        kwargs = {"sleep": sleep} if sleep else {}
        client = sms.TwilioClient(sms_config.get("api_base"), account, user, password, **kwargs)
        callback = sms.status_callback_url(sms_config.get("public_base_url")) \
            if sms_config.get("public_base_url") else None
        items = [(sms.form(r["to_address"], r["body"], from_=r["from_address"],
                           messaging_service_sid=config.get("messaging_service_sid"),
                           status_callback=callback), r["id"]) for r in go]

        def record(key, outcome):
            if outcome.kind == "sent":
                with db.transaction() as tx:
                    store.update_communication(tx, org_id, key, {
                        "provider": "twilio", "provider_message_id": outcome.sid,
                        "provider_status": outcome.provider_status})

        for key, outcome in sms.send_batch(client, items, on_result=record):
            outcomes[key] = outcome

    final = []
    with db.transaction() as tx:
        for r in go:
            outcome = outcomes[r["id"]]
            if outcome.kind == "sent":
                # A status callback may already have moved it on (sending -> delivered).
                store.finish_sending(tx, org_id, r["id"], "sent")
                webhooks.apply_early_sms_status(tx, org_id, r["id"], outcome.sid)
                final.append(result_of(r, "sent", None))
            elif outcome.kind == "transient" and r["attempts"] + 1 < sending.MAX_ATTEMPTS:
                store.set_status(tx, org_id, [r["id"]], "queued", error=outcome.error,
                                 next_attempt_seconds=sending.requeue_delay(r["attempts"] + 1))
            else:
                store.set_status(tx, org_id, [r["id"]], "failed", error=outcome.error)
                if outcome.error_code:
                    store.update_communication(tx, org_id, r["id"], {"provider": "twilio",
                                                             "error_code": outcome.error_code})
                if outcome.error_code == "21610":
                    # Twilio: the handset replied STOP to this sender; record the opt-out here too.
                    tx.emit("opt_out_requested", {
                        "org_id": org_id, "channel": "sms", "identifier": r["to_address"],
                        "source": "user_action", "unsubscribed": True,
                        "contact_id": _s(r["contact_id"]), "communication_id": _s(r["id"])})
                final.append(result_of(r, "failed", outcome.error))
        store.touch_threads(tx, org_id, [r["thread_id"] for r in go])
        if already or final:
            emit_results(tx, org_id, immediate_groups(already + final))
    return final


def _s(value):
    return None if value is None else str(value)

