"""Email settings, channel readiness, the communications feed and threads."""
from flask import Blueprint, g
from marshmallow import Schema, fields

from gateway.api import endpoint
from gateway.rpc import rpc
# Request bodies are the service's own schemas: one definition of each rule.
from services.messaging.schemas import (
    CommunicationFiltersSchema, EmailProviderSchema, SenderIdentitySchema)

bp = Blueprint("messaging", __name__, url_prefix="/api/v1")


class SenderOut(Schema):
    name = fields.String()
    email = fields.String()
    reply_domain = fields.String(allow_none=True)


class ProviderOut(Schema):
    kind = fields.String()
    host = fields.String()
    port = fields.Integer()
    username = fields.String(allow_none=True)
    tls_mode = fields.String()
    password_set = fields.Boolean()


class ReadinessOut(Schema):
    channel = fields.String()
    ready = fields.Boolean()
    missing = fields.List(fields.String())


class InboundOut(Schema):
    webhook_url = fields.String(allow_none=True)
    visible = fields.Boolean()


class EmailSettingsOut(Schema):
    sender = fields.Nested(SenderOut, allow_none=True)
    provider = fields.Nested(ProviderOut, allow_none=True)
    inbound = fields.Nested(InboundOut)
    readiness = fields.Nested(ReadinessOut)


class AttachmentOut(Schema):
    filename = fields.String()
    content_type = fields.String()
    size = fields.Integer()


class CommunicationOut(Schema):
    id = fields.String()
    thread_id = fields.String()
    draft_id = fields.String(allow_none=True)
    direction = fields.String()
    channel = fields.String()
    status = fields.String()
    is_test = fields.Boolean()
    automatic = fields.Boolean()
    campaign_id = fields.String(allow_none=True)
    run_id = fields.String(allow_none=True)
    contact_id = fields.String(allow_none=True)
    from_name = fields.String(allow_none=True)
    from_address = fields.String(allow_none=True)
    to_name = fields.String(allow_none=True)
    to_address = fields.String(allow_none=True)
    subject = fields.String(allow_none=True)
    body = fields.String(allow_none=True)
    stripped_text = fields.String(allow_none=True)
    preview_text = fields.String()
    message_id = fields.String(allow_none=True)
    in_reply_to = fields.String(allow_none=True)
    references = fields.List(fields.String())
    attachments = fields.List(fields.Nested(AttachmentOut))
    error = fields.String(allow_none=True)
    bounce_type = fields.String(allow_none=True)
    # What the provider reported through its webhooks.
    provider = fields.String(allow_none=True)
    provider_message_id = fields.String(allow_none=True)
    provider_status = fields.String(allow_none=True)
    error_code = fields.String(allow_none=True)
    delivered_at = fields.String(allow_none=True)
    opened_at = fields.String(allow_none=True)
    clicked_at = fields.String(allow_none=True)
    clicked_url = fields.String(allow_none=True)
    complained_at = fields.String(allow_none=True)
    duration_seconds = fields.Integer(allow_none=True)
    outcome = fields.String(allow_none=True)
    recording = fields.Dict(allow_none=True)
    created_at = fields.String()
    sent_at = fields.String(allow_none=True)
    updated_at = fields.String()


class CommunicationPageOut(Schema):
    items = fields.List(fields.Nested(CommunicationOut))
    next_cursor = fields.String(allow_none=True)


class ThreadOut(Schema):
    id = fields.String()
    channel = fields.String()
    contact_id = fields.String(allow_none=True)
    campaign_id = fields.String(allow_none=True)
    run_id = fields.String(allow_none=True)
    is_test = fields.Boolean()
    subject = fields.String(allow_none=True)
    created_at = fields.String()
    last_message_at = fields.String()
    messages = fields.List(fields.Nested(CommunicationOut))


class FeedQuery(CommunicationFiltersSchema):
    """Query string of the feed; the service validates again (it is the authority)."""

    def load(self, data, **kwargs):
        out = super().load(data, **kwargs)
        # Back to JSON-safe values for the RPC.
        for key in ("campaign_id", "run_id", "contact_id", "thread_id"):
            if out.get(key) is not None:
                out[key] = str(out[key])
        for key in ("since", "until"):
            if out.get(key) is not None:
                out[key] = out[key].isoformat()
        return out


@bp.get("/settings/email")
@endpoint("read", response=EmailSettingsOut(), summary="Email settings: sender, provider, inbound",
          tags=["settings"])
def get_email_settings():
    return rpc.messaging.get_email_settings(g.ctx)


@bp.put("/settings/email/sender")
@endpoint("manage", body=SenderIdentitySchema(), response=EmailSettingsOut(),
          summary="Set the sender identity (name and address)", tags=["settings"])
def set_sender_identity(body):
    return rpc.messaging.set_sender_identity(g.ctx, body)


@bp.put("/settings/email/provider")
@endpoint("manage", body=EmailProviderSchema(), response=EmailSettingsOut(),
          summary="Set the outgoing SMTP provider (the password is stored encrypted, never shown)",
          tags=["settings"])
def set_email_provider(body):
    return rpc.messaging.set_email_provider(g.ctx, body)


@bp.get("/settings/channels")
@endpoint("read", response=ReadinessOut(), many=True,
          summary="Readiness of each channel and what it still lacks", tags=["settings"])
def channel_readiness():
    return rpc.messaging.list_channel_readiness(g.ctx)


@bp.get("/communications")
@endpoint("read", query=FeedQuery(), response=CommunicationPageOut(),
          summary="Communications feed, newest first: {items, next_cursor}; the next page with "
                  "`after` = next_cursor (`cursor` is a deprecated alias)", tags=["communications"])
def list_communications(query):
    return rpc.messaging.list_communications(g.ctx, query)


@bp.get("/communications/<communication_id>")
@endpoint("read", response=CommunicationOut(), summary="One communication",
          tags=["communications"])
def get_communication(communication_id):
    return rpc.messaging.get_communication(g.ctx, communication_id)


@bp.get("/threads/<thread_id>")
@endpoint("read", response=ThreadOut(), summary="A thread with its messages in order",
          tags=["communications"])
def get_thread(thread_id):
    return rpc.messaging.get_thread(g.ctx, thread_id)


# -- provider integrations ------------------------------------------------------------------

from services.messaging import schemas as messaging_schemas  # noqa: E402


@bp.get("/settings/providers")
@endpoint("read", summary="Provider integrations (Twilio, SendGrid, Mailgun, Postmark): settings "
          "without secrets; webhook URLs for those who manage channel setup", tags=["settings"])
def get_provider_settings():
    return rpc.messaging.get_provider_settings(g.ctx)


def _provider_route(provider, schema, summary):
    def view(body):
        return rpc.messaging.set_provider_settings(g.ctx, provider, body)
    view.__name__ = f"set_{provider}_settings"
    bp.add_url_rule(f"/settings/providers/{provider}", endpoint=f"set_{provider}_settings",
                    view_func=endpoint("manage", body=schema, summary=summary,
                                       tags=["settings"])(view),
                    methods=["PUT"])


_provider_route("twilio", messaging_schemas.TwilioSettingsSchema(),
                "Twilio credentials (token or key/secret) and the organization's number")
_provider_route("sendgrid", messaging_schemas.SendGridSettingsSchema(),
                "SendGrid Event Webhook verification key and Inbound Parse basic auth")
_provider_route("mailgun", messaging_schemas.MailgunSettingsSchema(),
                "Mailgun webhook signing key and timestamp tolerance")
_provider_route("postmark", messaging_schemas.PostmarkSettingsSchema(),
                "Postmark inbound webhook basic-auth credentials")


@bp.delete("/settings/providers/<provider>")
@endpoint("manage", status=204, summary="Disconnect a provider (its secrets are deleted)",
          tags=["settings"])
def remove_provider_settings(provider):
    rpc.messaging.remove_provider_settings(g.ctx, provider)
    return None
