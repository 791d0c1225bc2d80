"""Building messaging state for tests through messaging's own store and RPCs."""
import base64
import contextlib
import uuid

from services.common.db import Tx
from services.messaging import settings, store


def new_ctx(role="owner"):
    """A context for a fresh organization (messaging keeps its own per-org rows)."""
    return {"org_id": str(uuid.uuid4()), "user_id": str(uuid.uuid4()), "role": role}


@contextlib.contextmanager
def messaging_tx(stack):
    conn = stack.db("messaging")
    try:
        yield Tx(conn)
        conn.commit()
    finally:
        conn.close()


def inbound_key(stack, org_id):
    """The org's inbound key, created as the service creates it (first read of the settings)."""
    with messaging_tx(stack) as tx:
        return settings.load(tx, org_id)["inbound_key"]


def seed_outbound(stack, org_id, message_id, to_address, subject, reply_token=None,
                  bounce_token=None, thread_id=None, contact_id=None, campaign_id=None,
                  run_id=None, status="sent", channel="email", provider=None,
                  provider_message_id=None, from_address="jordan.ellis@example.org",
                  body="(campaign e-mail)"):
    """One sent campaign message as the sender records it (an e-mail unless `channel` says sms
    or phone; `provider_message_id` is the id the provider returned at send time: SendGrid's
    X-Message-Id, Twilio's MessageSid or CallSid); returns (communication_id, thread_id)."""
    with messaging_tx(stack) as tx:
        if thread_id is None:
            thread_id = store.insert_thread(tx, org_id, channel, contact_id, subject,
                                            campaign_id=campaign_id, run_id=run_id)
        row = store.insert_communication(tx, {
            "org_id": org_id, "thread_id": thread_id, "direction": "outbound", "channel": channel,
            "status": status, "campaign_id": campaign_id, "run_id": run_id,
            "contact_id": contact_id, "draft_id": str(uuid.uuid4()),
            "from_name": "Jordan Ellis" if channel == "email" else None,
            "from_address": from_address,
            "to_address": to_address, "subject": subject, "body": body,
            "message_id": message_id, "reply_token": reply_token, "bounce_token": bounce_token,
            "provider": provider, "provider_message_id": provider_message_id,
        })
    return str(row["id"]), str(thread_id)


def outbox_events(stack, event_type):
    with messaging_tx(stack) as tx:
        return [r["payload"] for r in tx.all(
            "SELECT payload FROM outbox WHERE event_type = %s ORDER BY id", (event_type,))]


def b64(raw):
    return base64.b64encode(raw).decode()
