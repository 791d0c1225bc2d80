"""Who is calling: a bearer token resolved by the identity service to a user and, for
organization routes, the active membership (X-Organization-Id header, else the session's
active organization). Sets g.ctx = {org_id, user_id, role} for the RPC calls that follow.

Token checks are cached in this process so a check costs microseconds, not an RPC. The cache is
only used while this process listens to identity's `access_changed` events (a small kombu
consumer thread bound to the `identity.events` exchange): a lock, role change, removal, session
revocation or password change evicts the user's entries as soon as identity commits it, and the
identity routes of this gateway also evict synchronously. Entries live at most CACHE_TTL seconds
and never past the session's expiry. If the listener loses the broker, caching stops (every
check goes to identity) until it is back."""
import datetime as dt
import hashlib
import logging
import threading
import time
import uuid

from flask import current_app, g, request

from gateway.errors import ApiError
from gateway.permissions import allowed
from gateway.rpc import rpc

log = logging.getLogger(__name__)

CACHE_TTL = 60.0
CACHE_MAX = 50_000


class TokenCache:
    def __init__(self, ttl=CACHE_TTL):
        self.ttl = ttl
        self.entries = {}
        self.lock = threading.Lock()
        self.enabled = threading.Event()  # set while the eviction listener is connected
        # Bumped by every eviction: a check that started before an eviction must not store its
        # (possibly stale) answer after it.
        self.generation = 0

    @staticmethod
    def key(token, wanted_org):
        return hashlib.sha256(token.encode("utf-8")).hexdigest(), wanted_org

    def get(self, token, wanted_org):
        if not self.enabled.is_set():
            return None
        entry = self.entries.get(self.key(token, wanted_org))
        if entry is None:
            return None
        who, expires = entry
        if time.monotonic() >= expires:
            self.entries.pop(self.key(token, wanted_org), None)
            return None
        return who

    def put(self, token, wanted_org, who, generation):
        if not self.enabled.is_set() or generation != self.generation:
            return
        ttl = self.ttl
        if who.get("expires_at"):
            try:
                left = (dt.datetime.fromisoformat(who["expires_at"])
                        - dt.datetime.now(dt.timezone.utc)).total_seconds()
                ttl = min(ttl, left)
            except ValueError:
                pass
        if ttl <= 0:
            return
        with self.lock:
            if generation != self.generation:
                return
            if len(self.entries) >= CACHE_MAX:
                self.entries.clear()
            self.entries[self.key(token, wanted_org)] = (who, time.monotonic() + ttl)

    def forget(self, user_id=None, org_id=None):
        """Drop every entry of this user (or, with only org_id, of everyone in that org)."""
        with self.lock:
            self.generation += 1
            for k, (who, _) in list(self.entries.items()):
                if (user_id and who.get("user_id") == user_id) or (
                        not user_id and org_id and (who.get("org_id") == org_id or any(
                            o["org_id"] == org_id for o in who.get("organizations", ())))):
                    self.entries.pop(k, None)

    def clear(self):
        with self.lock:
            self.generation += 1
            self.entries.clear()


cache = TokenCache()


class EvictionListener(threading.Thread):
    """Consumes identity.access_changed with an exclusive, auto-deleted queue of its own (every
    gateway process gets every event) and evicts cache entries."""

    def __init__(self, amqp_uri, config):
        super().__init__(name="auth-cache-evictions", daemon=True)
        self.amqp_uri, self.config = amqp_uri, config
        self.stopped = threading.Event()

    def run(self):
        from kombu import Connection, Queue
        from nameko.standalone.events import get_event_exchange

        exchange = get_event_exchange("identity", self.config)
        while not self.stopped.is_set():
            try:
                with Connection(self.amqp_uri, heartbeat=30) as conn:
                    queue = Queue(f"gateway-auth-cache-{uuid.uuid4().hex}", exchange,
                                  routing_key="access_changed", exclusive=True,
                                  auto_delete=True, durable=False)
                    with conn.Consumer(queue, callbacks=[self.on_message], accept=["json"]):
                        # Whatever changed while we were away is unknown: start empty.
                        cache.clear()
                        cache.enabled.set()
                        while not self.stopped.is_set():
                            try:
                                conn.drain_events(timeout=1)
                            except TimeoutError:
                                conn.heartbeat_check()
            except Exception:
                log.warning("auth cache listener lost the broker; caching paused", exc_info=True)
            cache.enabled.clear()
            cache.clear()
            self.stopped.wait(1)

    def on_message(self, body, message):
        try:
            cache.forget(user_id=body.get("user_id"), org_id=body.get("org_id"))
        finally:
            message.ack()


_listener = None
_listener_lock = threading.Lock()


def start_listener():
    global _listener
    if _listener is not None:
        return
    with _listener_lock:
        if _listener is None and not current_app.config.get("AUTH_CACHE_DISABLED"):
            cfg = current_app.config
            _listener = EvictionListener(cfg["AMQP_URI"], {
                "AUTO_DELETE_EVENT_EXCHANGES": cfg.get("AUTO_DELETE_EVENT_EXCHANGES"),
                "DECLARE_EVENT_EXCHANGES": cfg.get("DECLARE_EVENT_EXCHANGES")})
            _listener.start()


def forget(user_id=None, org_id=None):
    """Evict at once in this process (identity's event does the same in every other one)."""
    cache.forget(user_id=user_id, org_id=org_id)


def bearer_token():
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "sign in first: send Authorization: Bearer <token>")
    return token.strip()


def resolve(token, wanted_org):
    """identity.authenticate, through the cache."""
    start_listener()
    who = cache.get(token, wanted_org)
    if who is None:
        generation = cache.generation
        # identity answers Unauthorized for unknown, expired or revoked tokens and locked users,
        # and NotFound when the user has no membership in the wanted organization.
        who = rpc.identity.authenticate(token, wanted_org)
        cache.put(token, wanted_org, who, generation)
    return who


def authenticate(permission, org_scoped=True):
    started = time.perf_counter()
    token = bearer_token()
    wanted_org = request.headers.get("X-Organization-Id") or None
    who = resolve(token, wanted_org)
    g.user = who
    g.token = token
    org_id = who.get("org_id")
    role = who.get("role")
    # Set before the role check, so a denial too names the organization it concerns.
    g.ctx = {"org_id": org_id, "user_id": who["user_id"], "role": role or "viewer",
             "request_id": request.headers.get("X-Request-Id")}
    if org_scoped or permission != "signed_in":
        if not org_id:
            raise ApiError(403, "no_organization",
                           "this account has no organization yet: complete onboarding first")
        if permission != "signed_in" and not allowed(permission, role):
            raise ApiError(403, "forbidden", f"the {role} role may not do this")
    g.auth_seconds = time.perf_counter() - started
    return who
