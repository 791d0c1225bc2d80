"""Flask app factory: blueprints, RPC pool, JSON errors, the OpenAPI document."""
import importlib
import logging
import re
import time
import uuid

from flask import Flask, g, jsonify, request

from gateway import errors, openapi
from gateway.api import bad_text
from gateway.errors import ApiError
from gateway.rpc import rpc
from services.common.config import check_secrets, load_config

log = logging.getLogger("gateway.access")

# Webhook URLs carry per-organization secrets in their path; access logs show them redacted.
_SECRET_PATH = re.compile(r"(/webhooks/(?:[a-z]+/)*?(?:inbound|[a-z]+)/)([A-Za-z0-9_\-]{16,})")

# One module per resource under gateway/routes/; each exposes `bp`.
BLUEPRINTS = (
    "gateway.routes.identity",
    "gateway.routes.contacts",
    "gateway.routes.campaigns",
    "gateway.routes.messaging",
    "gateway.routes.reporting",
    "gateway.routes.dashboard",
    "gateway.routes.webhooks",
)


def create_app(config=None):
    app = Flask(__name__)
    app.config.update(load_config())
    app.config["MAX_CONTENT_LENGTH"] = 60 * 1024 * 1024
    if config:
        app.config.update(config)
    check_secrets(app.config)
    app.json.sort_keys = False
    logging.basicConfig(level=logging.INFO)
    rpc.init_app(app)
    errors.register(app)
    for name in BLUEPRINTS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:
                raise
            continue
        app.register_blueprint(module.bp)

    @app.before_request
    def request_id():
        g.request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
        g.started = time.perf_counter()
        # A NUL or a lone surrogate in the path or query can never match a stored row, and the
        # database refuses to even compare with it: answer 400 before any service sees it.
        for where, text in [("path", request.path)] + [(k, v) for k, v in request.args.items(multi=True)]:
            reason = bad_text(text)
            if reason:
                raise ApiError(400, "invalid", f"invalid {where}", errors={where: [reason]})

    @app.after_request
    def stamp(resp):
        resp.headers["X-Request-Id"] = g.get("request_id", "")
        ctx = g.get("ctx")
        if ctx and ctx.get("org_id"):
            # Every response says which organization it concerns.
            resp.headers["X-Organization-Id"] = ctx["org_id"]
        log.info("%s %s %s %.1fms %s", request.method, redact(request.path), resp.status_code,
                 (time.perf_counter() - g.get("started", time.perf_counter())) * 1000,
                 g.request_id)
        return resp

    @app.get("/api/openapi.json")
    def openapi_document():
        return jsonify(openapi.openapi_json())

    @app.get("/health")
    def health():
        return jsonify({"ok": True})

    return app


def redact(path):
    """The request path as it may be logged: secrets in webhook paths replaced."""
    return _SECRET_PATH.sub(r"\1[redacted]", path)
