"""One table from domain errors to HTTP statuses; every error leaves as JSON, never a stack trace."""
import logging

from flask import jsonify
from nameko.exceptions import RemoteError, UnknownService
from nameko.standalone.rpc import RpcTimeout as ProxyTimeout
from werkzeug.exceptions import HTTPException

from gateway.rpc import rpc
from services.common import errors as e
from services.common.rpc import RpcTimeout

log = logging.getLogger(__name__)

STATUS = {
    e.Invalid: 400,
    e.Unauthorized: 401,
    e.Forbidden: 403,
    e.NotFound: 404,
    e.Conflict: 409,
    e.NotReady: 422,
    e.RateLimited: 429,
    RpcTimeout: 504,
}


class ApiError(Exception):
    """Raised by gateway code itself for request-shape problems (bad JSON, bad upload)."""

    def __init__(self, status, error, message, **details):
        super().__init__(message)
        self.status, self.body = status, {"error": error, "message": message, **details}


def register(app):
    @app.errorhandler(e.DomainError)
    def domain_error(err):
        status = STATUS.get(type(err), 400)
        resp = jsonify(err.payload)
        resp.status_code = status
        if isinstance(err, e.RateLimited):
            resp.headers["Retry-After"] = str(int(float(err.retry_after)))
        return resp

    @app.errorhandler(ApiError)
    def api_error(err):
        return jsonify(err.body), err.status

    @app.errorhandler(HTTPException)
    def http_error(err):
        name = (err.name or "error").lower().replace(" ", "_")
        return jsonify({"error": name, "message": err.description}), err.code

    @app.errorhandler(ProxyTimeout)
    def timeout(err):
        rpc.reset()
        return jsonify({"error": "upstream_timeout", "message": "a service did not answer in time"}), 504

    @app.errorhandler(UnknownService)
    def unknown_service(err):
        return jsonify({"error": "service_unavailable", "message": f"service not running: {err}"}), 503

    @app.errorhandler(RemoteError)
    def remote_error(err):
        log.error("remote error: %s", err)
        return jsonify({"error": "internal", "message": "internal error"}), 500

    @app.errorhandler(Exception)
    def unexpected(err):
        log.exception("unhandled error")
        return jsonify({"error": "internal", "message": "internal error"}), 500
