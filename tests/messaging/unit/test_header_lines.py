"""A line break in a name or subject can neither break an outgoing email nor add a header."""
from services.messaging import sending


def comm(**kw):
    base = {"from_name": "Jordan Ellis", "from_address": "jordan.ellis@example.org",
            "to_name": "Ann Lee", "to_address": "ann.lee@example.com", "subject": "Hello",
            "message_id": "<c1@example.org>", "body": "Hi Ann", "reply_token": "t1"}
    return dict(base, **kw)


def test_line_breaks_in_names_and_subject_become_spaces():
    msg = sending.build(comm(from_name="Jordan\r\nBcc: victim@example.net", to_name="Ann\nLee",
                             subject="Pilot\r\n scope\u2028today"), reply_domain="in.example.org")
    text = msg.as_string()
    headers = text.split("\n\n", 1)[0]
    assert "\nBcc:" not in headers
    assert msg["To"] == "Ann Lee <ann.lee@example.com>"
    assert msg["Subject"] == "Pilot scope today"
    assert msg["From"] == '"Jordan Bcc: victim@example.net" <jordan.ellis@example.org>'
    assert msg["Reply-To"] == '"Jordan Bcc: victim@example.net" <reply+t1@in.example.org>'


def test_header_text_keeps_ordinary_values():
    assert sending.header_text("José Muñoz") == "José Muñoz"
    assert sending.header_text(None) == ""
    assert sending.header_text("  a \t b  ") == "a b"
