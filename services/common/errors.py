"""The one error vocabulary. Each class crosses RPC as itself (nameko's remote-error registry),
and the gateway maps it to an HTTP status in one table (gateway/errors.py)."""
import json

from nameko.exceptions import registry


class DomainError(Exception):
    """Base: `payload` is the JSON-safe body a client may see. Never put secrets in it."""

    code = "error"

    def __init__(self, message="", **details):
        # nameko stringifies every non-string in exception args on the way over RPC; details go
        # as JSON text so numbers and booleans arrive as numbers and booleans.
        super().__init__(message, json.dumps(details, default=str))
        self.message = message
        self.details = details

    def __str__(self):
        return self.message

    @property
    def payload(self):
        body = {"error": self.code, "message": self.message}
        body.update(self.details)
        return body


class NotFound(DomainError):
    code = "not_found"


class Invalid(DomainError):
    """Per-field messages: Invalid(errors={"email": ["not a valid address"]})."""

    code = "invalid"

    def __init__(self, message="invalid input", errors=None, **details):
        super().__init__(message, errors=errors or {}, **details)
        self.errors = errors or {}

    def summary(self, limit=1000):
        """The message and every field's reasons on one line, for a stored status
        ("the CSV is malformed: record 2 (line 3): a quoted cell is never closed")."""
        reasons = [str(m) for ms in self.errors.values() for m in (ms if isinstance(ms, list) else [ms])]
        return (f"{self.message}: {'; '.join(reasons)}" if reasons else self.message)[:limit]


# identity's answer for a membership locked in the organization asked for (Unauthorized: the
# gateway answers 401 for the active organization, 403 when the call names another one).
LOCKED_IN_ORGANIZATION = "this account is locked in this organization"


class Conflict(DomainError):
    code = "conflict"


class Forbidden(DomainError):
    code = "forbidden"


class Unauthorized(DomainError):
    code = "unauthorized"


class NotReady(DomainError):
    """A requirement list: NotReady("campaign is not ready", reasons=[{"requirement": "goal", ...}])."""

    code = "not_ready"

    def __init__(self, message="not ready", reasons=None, **details):
        super().__init__(message, reasons=reasons or [], **details)
        self.reasons = reasons or []


class RateLimited(DomainError):
    code = "rate_limited"

    def __init__(self, message="too many requests", retry_after=60, **details):
        super().__init__(message, retry_after=retry_after, **details)
        self.retry_after = retry_after


ALL = (NotFound, Invalid, Conflict, Forbidden, Unauthorized, NotReady, RateLimited)


def _rebuild(cls):
    def make(*args):
        # Remote args are (message, details as JSON) as built by DomainError.__init__.
        message = args[0] if args else ""
        details = {}
        if len(args) > 1:
            try:
                details = json.loads(args[1]) if isinstance(args[1], str) else dict(args[1])
            except (ValueError, TypeError):
                details = {}
        return cls(message, **details)

    return make


for _cls in ALL:
    registry[f"{_cls.__module__}.{_cls.__name__}"] = _rebuild(_cls)
