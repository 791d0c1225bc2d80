"""Text from outside (inbound mail, provider webhooks) made storable: PostgreSQL refuses NUL in
text and jsonb, and psycopg2 cannot encode a lone UTF-16 surrogate (from a JSON "\\ud800" escape
or bytes a parser kept with surrogateescape). NUL is dropped; surrogate-escaped bytes are read
as UTF-8 when they are UTF-8, any other unpaired surrogate becomes U+FFFD."""


def text(value):
    """A str safe to store; anything else is returned as is."""
    if not isinstance(value, str):
        return value
    if "\x00" in value:
        value = value.replace("\x00", "")
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        pass
    try:
        # Raw 8-bit bytes a parser kept as U+DC80..U+DCFF: often plain UTF-8 (SMTPUTF8 headers).
        return value.encode("utf-8", "surrogateescape").decode("utf-8").replace("\x00", "")
    except UnicodeError:
        pass
    # Pairs written as two code points are joined; an unpaired surrogate becomes U+FFFD.
    return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def deep(value):
    """`text` applied to every str inside dicts, lists and tuples (keys included)."""
    if isinstance(value, str):
        return text(value)
    if isinstance(value, dict):
        return {deep(k): deep(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(deep(v) for v in value)
    return value
