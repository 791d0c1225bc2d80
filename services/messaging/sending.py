"""Turning outbound communications into RFC 5322 messages and handing them to an SMTP server:
one connection per batch, timeouts, retries with backoff on transient failures (4xx replies,
dropped connections), a clear permanent failure on 5xx."""
import logging
import re
import smtplib
import socket
import ssl
import time
from email.message import EmailMessage
from email.utils import formataddr, format_datetime

log = logging.getLogger(__name__)

TIMEOUT = 30
ATTEMPTS_PER_BATCH = 3       # tries within one batch before the message goes back to the queue
BACKOFF = (0.5, 2.0)         # seconds between those tries
MAX_ATTEMPTS = 5             # queued retries across batches before a message is failed for good


def requeue_delay(attempts):
    """Seconds before a transiently failed message is tried again: 1, 2, 4, 8 minutes."""
    return 60 * 2 ** max(0, attempts - 1)


class TransientError(Exception):
    pass


class PermanentError(Exception):
    pass


def domain_of(address):
    return address.rsplit("@", 1)[-1].lower()


def message_id(communication_id, sender_email):
    return f"<{communication_id}@{domain_of(sender_email)}>"


LINE_BREAKS = re.compile(r"[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]+")


def header_text(value):
    """A header value on one line: a line break in a name or subject (an imported "Ann\nLee")
    becomes a space, so it can neither break the message nor inject a header."""
    return " ".join(LINE_BREAKS.sub(" ", value or "").split())


def build(comm, reply_domain=None):
    """The message for one communication row (from/to/subject/body/message_id already set)."""
    msg = EmailMessage()
    msg["From"] = formataddr((header_text(comm["from_name"]), comm["from_address"]))
    msg["To"] = formataddr((header_text(comm["to_name"]), comm["to_address"]))
    msg["Subject"] = header_text(comm["subject"])
    msg["Date"] = format_datetime(comm.get("now") or _utcnow())
    msg["Message-ID"] = comm["message_id"]
    if reply_domain and comm.get("reply_token"):
        msg["Reply-To"] = formataddr((header_text(comm["from_name"]),
                                      f"reply+{comm['reply_token']}@{reply_domain}"))
    msg.set_content(comm["body"] or "")
    return msg


def envelope_sender(comm, reply_domain=None):
    """VERP: bounces come back to bounce+<token>@ when we have an inbound domain."""
    if reply_domain and comm.get("bounce_token"):
        return f"bounce+{comm['bounce_token']}@{reply_domain}"
    return comm["from_address"]


def _utcnow():
    import datetime
    return datetime.datetime.now(datetime.timezone.utc)


class SmtpConnection:
    """One SMTP session reused for a batch; reconnects after a dropped connection."""

    def __init__(self, settings, timeout=TIMEOUT):
        self.settings = settings
        self.timeout = timeout
        self.smtp = None

    def open(self):
        s = self.settings
        try:
            if s["tls_mode"] == "tls":
                smtp = smtplib.SMTP_SSL(s["host"], s["port"], timeout=self.timeout,
                                        context=ssl.create_default_context())
            else:
                smtp = smtplib.SMTP(s["host"], s["port"], timeout=self.timeout)
                if s["tls_mode"] == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
            if s.get("username"):
                smtp.login(s["username"], s.get("password") or "")
        except smtplib.SMTPAuthenticationError as err:
            raise PermanentError(f"SMTP authentication failed ({err.smtp_code})")
        except smtplib.SMTPResponseException as err:
            raise _classify(err.smtp_code, err.smtp_error)
        except ssl.SSLError as err:
            raise PermanentError(f"TLS failed: {err.reason or err}")
        except (OSError, smtplib.SMTPException) as err:
            raise TransientError(f"cannot connect to {s['host']}:{s['port']}: {err}")
        self.smtp = smtp

    def send(self, msg, mail_from, rcpt):
        if self.smtp is None:
            self.open()
        try:
            refused = self.smtp.send_message(msg, from_addr=mail_from, to_addrs=[rcpt])
        except smtplib.SMTPRecipientsRefused as err:
            code, text = next(iter(err.recipients.values()))
            raise _classify(code, text)
        except smtplib.SMTPResponseException as err:
            if err.smtp_code >= 500 or err.smtp_code < 400:
                self._reset()
            raise _classify(err.smtp_code, err.smtp_error)
        except (smtplib.SMTPServerDisconnected, OSError, socket.timeout) as err:
            self.close()
            raise TransientError(f"connection lost: {err}")
        if refused:
            code, text = next(iter(refused.values()))
            raise _classify(code, text)

    def _reset(self):
        try:
            self.smtp.rset()
        except Exception:
            self.close()

    def close(self):
        if self.smtp is not None:
            try:
                self.smtp.quit()
            except Exception:
                try:
                    self.smtp.close()
                except Exception:
                    pass
        self.smtp = None


def _classify(code, text):
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    message = f"{code} {text}".strip()
    if 400 <= int(code) < 500:
        return TransientError(message)
    return PermanentError(message)


def send_batch(connection, items, sleep=time.sleep, on_result=None):
    """Send (message, mail_from, rcpt, key) items over one connection. Each result is
    (key, "sent" | "transient" | "permanent", error). `on_result` is called as each finishes,
    so the caller can record it before the next message goes out."""
    results = []
    try:
        for msg, mail_from, rcpt, key in items:
            outcome = _send_one(connection, msg, mail_from, rcpt, sleep)
            result = (key,) + outcome
            results.append(result)
            if on_result:
                on_result(*result)
    finally:
        connection.close()
    return results


def _send_one(connection, msg, mail_from, rcpt, sleep):
    error = None
    for attempt in range(ATTEMPTS_PER_BATCH):
        try:
            connection.send(msg, mail_from, rcpt)
            return "sent", None
        except PermanentError as err:
            return "permanent", str(err)
        except TransientError as err:
            error = str(err)
            log.warning("transient SMTP failure (attempt %s): %s", attempt + 1, error)
            if attempt < ATTEMPTS_PER_BATCH - 1:
                sleep(BACKOFF[min(attempt, len(BACKOFF) - 1)])
    return "transient", error
