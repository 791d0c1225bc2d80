"""Provider webhooks. Inbound email: a raw RFC 5322 message POSTed to the organization's secret
inbound URL (from a forwarding rule, an MTA pipe, or a provider's "raw MIME" option)."""
import base64

from flask import Blueprint, request

from gateway.api import endpoint
from gateway.errors import ApiError
from gateway.rpc import rpc

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")

MAX_EMAIL_BYTES = 30 * 1024 * 1024


@bp.post("/email/inbound/<key>")
@endpoint("public", status=200, tags=["webhooks"],
          summary="Receive one raw email (message/rfc822) for the organization the key names")
def inbound_email(key):
    raw = request.get_data(cache=False)
    if not raw or not raw.strip():
        raise ApiError(400, "invalid", "the body must be a raw RFC 5322 message",
                       errors={"body": ["empty message"]})
    if len(raw) > MAX_EMAIL_BYTES:
        raise ApiError(413, "too_large", "the message is larger than 30 MB")
    result = rpc.messaging.receive_email(key, base64.b64encode(raw).decode("ascii"))
    comm = result.get("communication") or {}
    return {"kind": result["kind"], "duplicate": result["duplicate"],
            "communication_id": comm.get("id"), "thread_id": comm.get("thread_id")}
