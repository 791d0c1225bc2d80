"""What the dashboard needs from messaging: email readiness (sender identity, outgoing
provider), the optional incoming-email step, the "emails sent" count and the five most recent
messages received and sent, all of one organization."""
from services.messaging import communications, settings, store

RECENT = 5
# What "sent" means on the dashboard's recently sent list: it left us and nothing says it failed
# (calls: connected). Test messages are included: a test run's email is a first message sent.
SENT_STATUSES = ("sent", "delivered", "completed")


def facts(tx, org_id):
    row = settings.load(tx, org_id)
    received = store.inbound_email_received(tx, org_id)
    return {
        "email": settings.readiness(row, "email"),
        "incoming_email": settings.incoming_email(row, received),
        "emails_sent": store.count_emails_sent(tx, org_id),
        "recent_received": recent(tx, org_id, {"direction": "inbound"}),
        "recent_sent": recent(tx, org_id, {"direction": "outbound", "statuses": SENT_STATUSES}),
    }


def recent(tx, org_id, filters):
    rows = store.list_communications(tx, org_id, filters, None, RECENT)
    return [communications.view(r) for r in rows[:RECENT]]


def set_incoming_email_skipped(tx, org_id, skipped):
    """-> the incoming-email step (before, after): one look at what was received."""
    received = store.inbound_email_received(tx, org_id)
    before = settings.incoming_email(settings.load(tx, org_id), received)  # the row exists now
    store.set_incoming_email_skipped(tx, org_id, skipped)
    return before, settings.incoming_email(settings.load(tx, org_id), received)
