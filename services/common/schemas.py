"""Loading marshmallow schemas the same way everywhere: bad input becomes Invalid(field errors)."""
import datetime
import difflib

from marshmallow import RAISE, Schema, ValidationError, fields

from services.common.errors import Invalid


UNKNOWN = "unknown field"


class Strict(Schema):
    """A request body or query string: unknown fields are refused (400 naming them, with a hint
    at the right name), so a typo never silently does nothing. Events are read with EXCLUDE
    instead: contracts grow additively."""

    class Meta:
        unknown = RAISE

    error_messages = {"unknown": UNKNOWN}
    # Names people reach for -> the field this API calls it (besides close spellings).
    HINTS = {}

    def handle_error(self, error, data, *, many, **kwargs):
        messages = error.messages
        if not isinstance(messages, dict) or not any(m == [UNKNOWN] for m in messages.values()):
            return
        names = [f.data_key or name for name, f in self.load_fields.items()]
        out = {}
        for key, value in messages.items():
            if value != [UNKNOWN]:
                out[key] = value
                continue
            hint = self.HINTS.get(key) or next(
                iter(difflib.get_close_matches(str(key), names, n=1, cutoff=0.6)), None)
            out[key] = [f"{UNKNOWN}; did you mean {hint}?" if hint else
                        f"{UNKNOWN}; accepted: {', '.join(names) if names else 'none'}"]
        raise ValidationError(out, data=data, valid_data=error.valid_data)


class EmptyBody(Strict):
    """Actions that take no input (cancel, approve-all, retry, skip): a body with fields is refused."""


def load(schema, data, partial=False):
    try:
        return schema.load(data if data is not None else {}, partial=partial)
    except ValidationError as err:
        raise Invalid("invalid input", errors=err.messages)


def is_uuid(value):
    """Whether `value` reads as a UUID (ids from a URL or a payload, checked before SQL)."""
    import uuid
    try:
        uuid.UUID(str(value))
        return True
    except (ValueError, TypeError, AttributeError):
        return False


def uuid_or_404(value, what):
    """`value` as a UUID string, or NotFound ("<what> not found"): an id that cannot be one
    names nothing, so it is answered as an unknown id is (never a database error)."""
    import uuid
    from services.common.errors import NotFound
    try:
        return str(uuid.UUID(str(value)))
    except (ValueError, TypeError, AttributeError):
        raise NotFound(f"{what} not found")


def utc(value):
    """An ISO 8601 datetime as an aware UTC one (naive means UTC), or None when it names no
    instant PostgreSQL stores: a year past 9999 or before 1 once in UTC. PostgreSQL refuses
    offsets beyond 15:59 too, so values are handed to it in UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    try:
        return value.astimezone(datetime.timezone.utc)
    except (OverflowError, ValueError):
        return None


class _InUtc:
    default_error_messages = {"range": "out of range: a date-time from year 1 to 9999 (in UTC)"}

    def _deserialize(self, value, attr, data, **kwargs):
        parsed = utc(super()._deserialize(value, attr, data, **kwargs))
        if parsed is None:
            raise self.make_error("range")
        return parsed


class Timestamp(_InUtc, fields.DateTime):
    """An ISO 8601 date-time, loaded as aware UTC (naive means UTC)."""


class AwareTimestamp(_InUtc, fields.AwareDateTime):
    """An ISO 8601 date-time with an offset (or the field's default_timezone), loaded as UTC."""


LINE_BREAKS = "\r\n\v\f\x85\u2028\u2029"  # what ends a line (str.splitlines, less the rare separators)


def one_line(value):
    """A validator: text without a line break (a name that goes into a header or a greeting)."""
    if any(ch in value for ch in LINE_BREAKS):
        raise ValidationError("a name on one line (no line breaks)")


class Name(fields.String):
    """A person's or organization's name: trimmed, on one line, not blank, at most 200 chars."""
    default_error_messages = {"blank": "must not be blank", "lines": "a name on one line (no line breaks)",
                              "long": "at most 200 characters"}

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if any(ch in text for ch in LINE_BREAKS):
            raise self.make_error("lines")
        text = text.strip()
        if not text:
            raise self.make_error("blank")
        if len(text) > 200:
            raise self.make_error("long")
        return text
