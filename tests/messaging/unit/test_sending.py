"""Building outbound email and SMTP retry rules, against a scripted connection (no network)."""
from services.messaging import sending
from services.messaging.communications import may_move


class ScriptedConnection:
    """Answers each send with the next scripted outcome: None (accepted) or an exception."""

    def __init__(self, script):
        self.script = list(script)
        self.sent = []
        self.closed = False

    def send(self, msg, mail_from, rcpt):
        outcome = self.script.pop(0)
        if outcome is not None:
            raise outcome
        self.sent.append(rcpt)

    def close(self):
        self.closed = True


def comm(**kw):
    base = {"from_name": "Jordan Ellis", "from_address": "jordan.ellis@example.org",
            "to_name": "Ana Souza", "to_address": "ana.souza@example.com",
            "subject": "Quick question", "body": "Hi Ana", "reply_token": "tok1",
            "bounce_token": "b1", "message_id": sending.message_id("c-1", "jordan.ellis@example.org")}
    base.update(kw)
    return base


def test_message_id_uses_the_communication_id_and_the_sender_domain():
    assert sending.message_id("c-1", "Jordan@Example.ORG") == "<c-1@example.org>"


def test_built_message_carries_message_id_and_reply_token_when_an_inbound_domain_is_set():
    msg = sending.build(comm(), reply_domain="in.example.org")
    assert msg["Message-ID"] == "<c-1@example.org>"
    assert msg["Reply-To"] == "Jordan Ellis <reply+tok1@in.example.org>"
    assert msg["To"] == "Ana Souza <ana.souza@example.com>"
    assert sending.envelope_sender(comm(), "in.example.org") == "bounce+b1@in.example.org"
    assert "Reply-To" not in sending.build(comm())
    assert sending.envelope_sender(comm()) == "jordan.ellis@example.org"


def test_transient_refusal_is_retried_and_then_sent():
    conn = ScriptedConnection([sending.TransientError("451 try later"), None])
    results = sending.send_batch(conn, [(sending.build(comm()), "a@x", "ana@x", "k")],
                                 sleep=lambda s: None)
    assert results == [("k", "sent", None)]
    assert conn.closed


def test_permanent_refusal_fails_at_once_without_retry():
    conn = ScriptedConnection([sending.PermanentError("550 no such user"), None])
    results = sending.send_batch(conn, [(sending.build(comm()), "a@x", "ana@x", "k")],
                                 sleep=lambda s: None)
    assert results == [("k", "permanent", "550 no such user")]
    assert conn.script == [None]


def test_transient_refusals_past_the_batch_budget_go_back_to_the_queue():
    conn = ScriptedConnection([sending.TransientError("421 busy")] * sending.ATTEMPTS_PER_BATCH)
    results = sending.send_batch(conn, [(sending.build(comm()), "a@x", "ana@x", "k")],
                                 sleep=lambda s: None)
    assert results == [("k", "transient", "421 busy")]


def test_smtp_reply_codes_are_classified_4xx_transient_5xx_permanent():
    assert isinstance(sending._classify(421, b"busy"), sending.TransientError)
    assert isinstance(sending._classify(550, "no"), sending.PermanentError)


def test_status_transitions_allow_only_forward_moves():
    assert may_move("queued", "sending")
    assert may_move("sent", "bounced")
    assert not may_move("sent", "queued")
    assert not may_move("failed", "sent")
