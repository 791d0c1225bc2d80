"""The one error vocabulary. Each class crosses RPC as itself (nameko's remote-error registry),
and the gateway maps it to an HTTP status in one table (gateway/errors.py)."""
from nameko.exceptions import registry


class DomainError(Exception):
    """Base: `payload` is the JSON-safe body a client may see. Never put secrets in it."""

    code = "error"

    def __init__(self, message="", **details):
        super().__init__(message, details)
        self.message = message
        self.details = details

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
        # Remote args are (message, details) as built by DomainError.__init__.
        message = args[0] if args else ""
        details = args[1] if len(args) > 1 and isinstance(args[1], dict) else {}
        return cls(message, **details)

    return make


for _cls in ALL:
    registry[f"{_cls.__module__}.{_cls.__name__}"] = _rebuild(_cls)
