"""Provider webhooks. Inbound email: a raw RFC 5322 message POSTed to the organization's secret
inbound URL (from a forwarding rule, an MTA pipe, or a provider's "raw MIME" option)."""
import base64

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from gateway.api import endpoint
from gateway.errors import ApiError
from gateway.rpc import rpc
from services.common.config import inbound_email_max_bytes

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")

# Raw inbound email: 25 MB like common MTAs (Gmail, Microsoft 365), INBOUND_EMAIL_MAX_BYTES in
# config.yml to change it. Provider webhooks: 30 MB, SendGrid Inbound Parse's own limit.
MAX_WEBHOOK_BYTES = 30 * 1024 * 1024
CHUNK = 1024 * 1024


def read_body(limit, what):
    """The request body, or 413 (JSON) when it is larger than `limit`, decided before any RPC.
    An oversized body is read to its end in chunks and dropped, so the client gets our answer
    rather than a connection reset in the middle of its upload."""
    too_large = ApiError(413, "too_large", f"{what} is larger than {_mb(limit)}",
                         errors={"body": [f"at most {limit} bytes"]})
    length = request.content_length
    keep = length is None or length <= limit
    chunks, size = [], 0
    try:
        while True:
            chunk = request.stream.read(CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if keep and size <= limit:
                chunks.append(chunk)
            else:
                keep, chunks = False, []
    except RequestEntityTooLarge:
        raise too_large
    if not keep:
        raise too_large
    return b"".join(chunks)


def _mb(limit):
    return f"{limit / (1024 * 1024):g} MB"


@bp.post("/email/inbound/<key>")
@endpoint("public", status=200, tags=["webhooks"],
          summary="Receive one raw email (message/rfc822, at most 25 MB) for the organization "
                  "the key names; larger messages are answered 413")
def inbound_email(key):
    raw = read_body(inbound_email_max_bytes(current_app.config), "the message")
    if not raw or not raw.strip():
        raise ApiError(400, "invalid", "the body must be a raw RFC 5322 message",
                       errors={"body": ["empty message"]})
    result = rpc.messaging.receive_email(key, base64.b64encode(raw).decode("ascii"))
    comm = result.get("communication") or {}
    return {"kind": result["kind"], "duplicate": result["duplicate"],
            "communication_id": comm.get("id"), "thread_id": comm.get("thread_id")}


# -- provider webhooks ----------------------------------------------------------------------
# Each exists twice: with the organization's key in the path (/webhooks/<provider>/<key>/...)
# and without it (the organization is found from the payload and must verify with its secret).
# Signatures cover the URL the provider called, so it is rebuilt from X-Forwarded-Proto/Host
# when a proxy sets them, else from PUBLIC_BASE_URL, never from the internal request URL.

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
FORWARDED = ("Authorization", "Content-Type", "X-Twilio-Signature",
             "X-Twilio-Email-Event-Webhook-Signature", "X-Twilio-Email-Event-Webhook-Timestamp")


def public_url():
    host = request.headers.get("X-Forwarded-Host")
    if host:
        proto = (request.headers.get("X-Forwarded-Proto") or "https").split(",")[0].strip()
        base = f"{proto}://{host.split(',')[0].strip()}"
    else:
        base = current_app.config.get("PUBLIC_BASE_URL") or request.host_url
    query = request.query_string.decode("latin-1")
    return base.rstrip("/") + request.path + (f"?{query}" if query else "")


def _forward(provider, kind, key):
    raw = read_body(MAX_WEBHOOK_BYTES, "the request body")
    headers = {name.lower(): request.headers[name] for name in FORWARDED if name in request.headers}
    return rpc.messaging.receive_webhook({
        "provider": provider, "kind": kind, "key": key, "url": public_url(),
        "headers": headers, "body_b64": base64.b64encode(raw).decode("ascii")})


def _twiml(result):
    return Response(EMPTY_TWIML, status=200, mimetype="text/xml")


def _summary(result):
    comm = result.get("communication") or {}
    out = {"ok": True, "duplicate": result.get("duplicate", False), "kind": result.get("kind"),
           "communication_id": comm.get("id"), "thread_id": comm.get("thread_id")}
    for name in ("processed", "matched"):
        if name in result:
            out[name] = result[name]
    return out


def _twilio_view(kind, summary):
    def view(key=None):
        return _twiml(_forward("twilio", kind, key))
    view.__name__ = f"twilio_{kind}"
    view.__doc__ = summary
    return view


for _kind, _path, _summary_text in (
        ("sms_inbound", "sms/inbound", "Twilio incoming SMS (X-Twilio-Signature)"),
        ("sms_status", "sms/status", "Twilio SMS status callback (X-Twilio-Signature)"),
        ("voice_status", "voice/status", "Twilio call status callback (X-Twilio-Signature)")):
    _view = endpoint("public", status=200, tags=["webhooks"], summary=_summary_text)(
        _twilio_view(_kind, _summary_text))
    bp.add_url_rule(f"/twilio/{_path}", endpoint=f"twilio_{_kind}", view_func=_view,
                    methods=["POST"])
    bp.add_url_rule(f"/twilio/<key>/{_path}", endpoint=f"twilio_{_kind}_keyed", view_func=_view,
                    methods=["POST"])


@bp.post("/sendgrid/events")
@bp.post("/sendgrid/<key>/events")
@endpoint("public", status=200, tags=["webhooks"],
          summary="SendGrid Event Webhook batch (ECDSA signed)")
def sendgrid_events(key=None):
    return _summary(_forward("sendgrid", "events", key))


@bp.post("/sendgrid/inbound")
@bp.post("/sendgrid/<key>/inbound")
@endpoint("public", status=200, tags=["webhooks"],
          summary="SendGrid Inbound Parse (basic auth, or the key in the URL)")
def sendgrid_inbound(key=None):
    return _summary(_forward("sendgrid", "inbound", key))


@bp.post("/mailgun/events")
@bp.post("/mailgun/<key>/events")
@endpoint("public", status=200, tags=["webhooks"],
          summary="Mailgun event webhook (HMAC signed, one-time token)")
def mailgun_events(key=None):
    return _summary(_forward("mailgun", "events", key))


@bp.post("/postmark/inbound")
@bp.post("/postmark/<key>/inbound")
@endpoint("public", status=200, tags=["webhooks"], summary="Postmark inbound (basic auth)")
def postmark_inbound(key=None):
    return _summary(_forward("postmark", "inbound", key))
