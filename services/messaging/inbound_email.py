"""Reading an inbound email (RFC 5322 bytes) into what messaging needs: who wrote, the subject,
the thread references, the text the person wrote, attachments, and what kind of mail it is
(a reply, an automatic reply, a delivery-status bounce, an opt-out request). Stdlib `email` with
policy.default does MIME, RFC 2047 and transfer encodings."""
import codecs
import email
import email.policy
import hashlib
import re
from email.utils import getaddresses, parseaddr

from services.messaging import reply_text, sanitize

MSGID = re.compile(r"<[^<>\s]+>")
REPLY_TOKEN = re.compile(r"\breply\+([A-Za-z0-9][A-Za-z0-9._-]*)@", re.IGNORECASE)
BOUNCE_TOKEN = re.compile(r"\bbounce\+([A-Za-z0-9][A-Za-z0-9._-]*)@", re.IGNORECASE)

AUTO_SUBJECT = re.compile(
    r"^\s*(automatic reply|auto[- ]?reply|autoreply|auto:|out of (the )?office|abwesenheitsnotiz|"
    r"automatische antwort|respuesta automática|réponse automatique|risposta automatica)",
    re.IGNORECASE)

# Opt-out wording in the text the person wrote (quotes are already gone, so our own footer or a
# quoted "unsubscribe" link never counts).
OPT_OUT = re.compile(
    r"(take me off (of )?(your|the|this) (mailing |email |e-mail )?list|"
    r"remove me from (your|the|this) (mailing |email |e-mail )?list|"
    r"(please )?unsubscribe me|\bunsubscribe\b|\bopt(-| )?out\b|"
    r"stop (emailing|e-mailing|contacting|sending)|do not (email|e-mail|contact) me|"
    r"don'?t (email|e-mail|contact) me|no more emails|"
    r"nehmen sie mich (bitte )?(aus|von)|bitte austragen|abmelden|"
    r"darme de baja|dejen de (enviarme|escribirme)|désinscri|ne plus recevoir)",
    re.IGNORECASE)

# Bounds that keep a 25 MB message as cheap as a short one. The text a person wrote is at the top
# of a reply, so the stored body is a prefix and stripping works on it; HTML costs BeautifulSoup
# about 5 s per MB, so only its first part is read. Attachments are kept as metadata only.
BODY_CHARS = 200_000
HTML_CHARS = 250_000
SUBJECT_CHARS = 1_000
NAME_CHARS = 300
MAX_REFERENCES = 100
TRUNCATED_NOTE = "\n\n[message truncated: only the first {:,} characters are kept]"
# The stdlib parses a long address list at about 10 s per 100 KB (and again on every read), so a
# header longer than this is shortened before parsing (References keeps its newest ids), a header
# we read is kept at most READ_REPEATS times, and past HEADER_BLOCK_BYTES only the first of each
# header we read is kept. MTAs cap headers similarly.
HEADER_BYTES = 8 * 1024
HEADER_BLOCK_BYTES = 256 * 1024
READ_REPEATS = 10
READ_HEADERS = {
    b"from", b"to", b"cc", b"subject", b"message-id", b"in-reply-to", b"references",
    b"delivered-to", b"x-original-to", b"envelope-to", b"auto-submitted", b"x-autoreply",
    b"x-autorespond", b"precedence", b"x-auto-response-suppress",
    b"x-ms-exchange-inbox-rules-loop", b"x-ms-exchange-generated-message-source",
    b"mime-version", b"content-type", b"content-transfer-encoding", b"content-disposition"}
_HEADER_END = re.compile(rb"\r?\n\r?\n")


def parse(raw):
    """A dict describing the message; never raises for a malformed header (it is left empty).
    Every text in it is storable (no NUL, no lone surrogate) and bounded in size."""
    msg = email.message_from_bytes(bounded_headers(raw), policy=email.policy.default)
    from_name, from_address = _sender(msg)
    message_id = _first_id(_header(msg, "Message-ID"))
    text, html = _bodies(msg)
    body, stripped = body_text(text, html)
    dsn = _delivery_status(msg)
    parsed = {
        "from_name": from_name[:NAME_CHARS],
        "from_address": from_address,
        "to": _header(msg, "To"),
        "subject": _clean_subject(_header(msg, "Subject")),
        "message_id": message_id,
        "in_reply_to": MSGID.findall(_header(msg, "In-Reply-To"))[:MAX_REFERENCES],
        # The newest references are the last ones; a thread is found by them.
        "references": MSGID.findall(_header(msg, "References"))[-MAX_REFERENCES:],
        "reply_tokens": _tokens(msg, REPLY_TOKEN),
        "bounce_tokens": _tokens(msg, BOUNCE_TOKEN),
        "body": body,
        "stripped_text": stripped,
        "attachments": _attachments(msg),
        "automatic": is_automatic(msg),
        "bounce": dsn,
        "dedupe_key": message_id or "sha256:" + hashlib.sha256(raw).hexdigest(),
    }
    parsed = sanitize.deep(parsed)
    parsed["opt_out"] = bool(dsn is None and not parsed["automatic"]
                             and OPT_OUT.search(parsed["stripped_text"]))
    return parsed


def bounded_headers(raw):
    """`raw` with its top-level header block bounded (see HEADER_BYTES); unchanged when short."""
    found = _HEADER_END.search(raw)
    end = found.start() if found else len(raw)
    if end <= HEADER_BYTES:
        return raw
    headers = []
    for line in re.split(rb"\r?\n", raw[:end]):
        if line[:1] in (b" ", b"\t") and headers:
            headers[-1].append(line)
        else:
            headers.append([line])
    kept, total, seen = [], 0, {}
    for lines in headers:
        value = b"\r\n".join(lines)
        name = value.split(b":", 1)[0].strip().lower()
        if len(value) > HEADER_BYTES:
            value = _shorten_header(value, name)
        count = seen.get(name, 0)
        if name in READ_HEADERS and count >= READ_REPEATS:
            continue
        if total + len(value) > HEADER_BLOCK_BYTES and (name not in READ_HEADERS or count):
            continue
        seen[name] = count + 1
        total += len(value) + 2
        kept.append(value)
    return b"\r\n".join(kept) + raw[end:]


def _shorten_header(value, name):
    label = value.split(b":", 1)[0]
    if name in (b"references", b"in-reply-to"):
        tail = value[-HEADER_BYTES:]
        start = tail.find(b"<")
        return label + b": " + (tail[start:] if start >= 0 else b"")
    value = value[:HEADER_BYTES]
    cut = max(value.rfind(b","), value.rfind(b" "), value.rfind(b"\t"))
    if cut > len(label) + 1:
        value = value[:cut]
    return value.rstrip(b" \t\r\n,")


def body_text(text, html):
    """(body, stripped_text) from the text/plain part, else the HTML one, each read on a bounded
    prefix; a body cut short says so at its end (stripped_text never carries the note)."""
    if text is not None:
        truncated = len(text) > BODY_CHARS
        source = text[:BODY_CHARS]
    else:
        html = html or ""
        truncated = len(html) > HTML_CHARS
        source = reply_text.html_to_text(html[:HTML_CHARS])
    body = reply_text.normalize(sanitize.text(source))
    if len(body) > BODY_CHARS:
        body, truncated = body[:BODY_CHARS], True
    stripped = reply_text.strip_reply(body)
    if truncated:
        body += TRUNCATED_NOTE.format(BODY_CHARS)
    return body, stripped


def thread_candidates(parsed):
    """Message-IDs to look up, best first: In-Reply-To, then References newest to oldest."""
    seen, out = set(), []
    for mid in parsed["in_reply_to"] + list(reversed(parsed["references"])):
        if mid not in seen:
            seen.add(mid)
            out.append(mid)
    return out


def is_automatic(msg):
    """RFC 3834 Auto-Submitted, Exchange's X-Auto-Response-Suppress, and the usual subjects."""
    auto = _header(msg, "Auto-Submitted").strip().lower()
    if auto and auto != "no":
        return True
    if _header(msg, "X-Autoreply") or _header(msg, "X-Autorespond"):
        return True
    if _header(msg, "Precedence").strip().lower() in ("auto_reply", "bulk", "junk"):
        return True
    if _header(msg, "X-Auto-Response-Suppress").strip().lower() in ("all", "oof", "autoreply"):
        # Exchange marks its own automatic replies this way; a person's reply does not carry it.
        if AUTO_SUBJECT.search(_header(msg, "Subject")) or _header(msg, "X-MS-Exchange-Inbox-Rules-Loop") \
                or "mailbox rules" in _header(msg, "x-ms-exchange-generated-message-source").lower():
            return True
    return bool(AUTO_SUBJECT.search(_header(msg, "Subject")))


def _delivery_status(msg):
    """For a DSN (multipart/report; report-type=delivery-status): the failed recipients, status
    codes and the Message-ID of the returned original; None for any other mail."""
    if msg.get_content_type() != "multipart/report":
        return None
    if msg.get_param("report-type", "").lower() != "delivery-status":
        return None
    recipients, original_ids = [], []
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/delivery-status":
            recipients.extend(_dsn_recipients(part))
        elif ctype in ("text/rfc822-headers", "message/rfc822", "message/rfc822-headers"):
            original_ids.extend(_returned_ids(part))
    failed = [r for r in recipients if r["action"] == "failed"]
    hard = any(r["status"].startswith("5") for r in failed)
    return {
        "recipients": recipients,
        "original_message_ids": original_ids,
        "bounce_type": "hard" if hard else "soft",
        "failed": bool(failed),
        "diagnostic": "; ".join(r["diagnostic"] for r in failed if r["diagnostic"])[:1000],
    }


def _dsn_recipients(part):
    payload = part.get_payload()
    blocks = []
    if isinstance(payload, list):
        blocks = [str(p) for p in payload]
    else:
        blocks = re.split(r"\r?\n\r?\n", part.get_payload(decode=True).decode("utf-8", "replace"))
    out = []
    for block in blocks:
        fields = {}
        for name, value in re.findall(r"^([A-Za-z-]+):[ \t]*(.*(?:\r?\n[ \t]+.*)*)", block, re.M):
            fields[name.lower()] = re.sub(r"\s+", " ", value).strip()
        if "final-recipient" in fields or "action" in fields:
            recipient = fields.get("final-recipient", "").split(";")[-1].strip()
            out.append({"recipient": recipient.lower(), "action": fields.get("action", "").lower(),
                        "status": fields.get("status", ""),
                        "diagnostic": fields.get("diagnostic-code", "")})
    return out


def _returned_ids(part):
    payload = part.get_payload()
    if isinstance(payload, list) and payload:
        inner = payload[0]
        return MSGID.findall(str(inner.get("Message-ID", "")))
    raw = part.get_payload(decode=True) or b""
    headers = email.message_from_bytes(raw, policy=email.policy.compat32)
    return MSGID.findall(str(headers.get("Message-ID", "")))


def _bodies(msg):
    """(text, html): the first text/plain and text/html that are not attachments."""
    text = html = None
    for part in msg.walk():
        if part.is_multipart() or part.get_content_maintype() != "text":
            continue
        if part.get_content_disposition() == "attachment":
            continue
        subtype = part.get_content_subtype()
        if subtype == "plain" and text is None:
            # One character over the bound tells body_text the text was cut.
            text = _content(part)[:BODY_CHARS + 1]
            if part.get_param("format", "").lower() == "flowed":
                text = reply_text.unflow(text, part.get_param("delsp", "").lower() == "yes")
        elif subtype == "html" and html is None:
            html = _content(part)[:HTML_CHARS + 1]
        if msg.get_content_type() == "multipart/report":
            break  # the human notice only; the rest is machine data
    return text, html


def _content(part):
    try:
        return part.get_content()
    except (LookupError, UnicodeError, AssertionError):
        data = part.get_payload(decode=True) or b""
        return data.decode(part.get_content_charset() or "utf-8", "replace") \
            if _known_charset(part.get_content_charset()) else data.decode("latin-1")


def _known_charset(name):
    try:
        codecs.lookup(name or "utf-8")
        return True
    except LookupError:
        return False


def _attachments(msg):
    out = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        disposition = part.get_content_disposition()
        filename = part.get_filename()
        if disposition != "attachment" and not (filename and part.get_content_maintype() != "text"):
            continue
        if msg.get_content_type() == "multipart/report":
            continue
        out.append({"filename": (filename or "attachment")[:NAME_CHARS],
                    "content_type": part.get_content_type(), "size": _decoded_size(part)})
    return out


def _decoded_size(part):
    """The attachment's size in bytes, without decoding a base64 payload into memory again."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return sum(_decoded_size(p) for p in payload)
    if not isinstance(payload, str):
        return len(part.get_payload(decode=True) or b"")
    if part.get("Content-Transfer-Encoding", "").strip().lower() == "base64":
        compact = len(payload) - sum(payload.count(c) for c in "\r\n \t")
        padding = payload.rstrip()[-2:].count("=")
        return max(0, compact * 3 // 4 - padding)
    return len(part.get_payload(decode=True) or b"")


def _sender(msg):
    value = _header(msg, "From")
    try:
        header = msg["From"]
        if header is not None and getattr(header, "addresses", None):
            addr = header.addresses[0]
            return addr.display_name or "", (addr.addr_spec or "").lower()
    except Exception:
        pass
    name, addr = parseaddr(value)
    return name, addr.lower()


def _tokens(msg, pattern):
    values = []
    for name in ("To", "Delivered-To", "X-Original-To", "Envelope-To", "Cc"):
        for value in msg.get_all(name, []) or []:
            values.append(str(value))
    found = []
    for value in values:
        for token in pattern.findall(value):
            if token not in found:
                found.append(token)
    return found


def _header(msg, name):
    """A header as text; "" when missing or too malformed for the parser."""
    try:
        value = msg.get(name)
    except Exception:
        return ""
    return "" if value is None else str(value)


def _clean_subject(subject):
    return re.sub(r"\s*\r?\n\s*", " ", (subject or "")[:SUBJECT_CHARS * 2]).strip()[:SUBJECT_CHARS]


def recipient_addresses(value):
    return [addr.lower() for _, addr in getaddresses([value or ""]) if addr]


def _first_id(value):
    found = MSGID.findall(value or "")
    if found:
        return found[0]
    value = (value or "").strip()
    return f"<{value}>" if value and " " not in value else None
