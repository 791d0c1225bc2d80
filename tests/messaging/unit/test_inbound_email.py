"""Reading inbound email: headers, bodies, kinds (reply, automatic, bounce, opt-out), without a broker."""
from services.messaging import inbound_email

RAW = (b"From: =?UTF-8?Q?Jos=C3=A9_Mu=C3=B1oz?= <Jose.Munoz@Example.com>\r\n"
       b"To: Jordan <reply+7f3a-77-m5n7b9@in.example.org>\r\n"
       b"Subject: =?UTF-8?B?UmU6IFByw7N4aW1hIHJldW5pw7NuIOKAlCA=?=\r\n"
       b" =?UTF-8?B?wr9tYXJ0ZXMgbyBtacOpcmNvbGVzPw==?=\r\n"
       b"Message-ID: <abc@example.com>\r\n"
       b"In-Reply-To: <run-1@mail.example.org>\r\n"
       b"References: <run-0@mail.example.org> <theirs@example.com>\r\n <run-1@mail.example.org>\r\n"
       b"Content-Type: text/plain; charset=UTF-8\r\n\r\n"
       b"Please take me off your list.\r\n")


def test_encoded_words_decode_and_adjacent_ones_join_without_a_space():
    parsed = inbound_email.parse(RAW)
    assert parsed["from_name"] == "José Muñoz"
    assert parsed["from_address"] == "jose.munoz@example.com"
    assert parsed["subject"] == "Re: Próxima reunión — ¿martes o miércoles?"


def test_thread_candidates_are_in_reply_to_then_references_newest_first():
    parsed = inbound_email.parse(RAW)
    assert inbound_email.thread_candidates(parsed) == [
        "<run-1@mail.example.org>", "<theirs@example.com>", "<run-0@mail.example.org>"]
    assert parsed["reply_tokens"] == ["7f3a-77-m5n7b9"]


def test_opt_out_wording_in_the_new_text_is_an_opt_out_request():
    assert inbound_email.parse(RAW)["opt_out"] is True


def test_unsubscribe_wording_only_in_the_quote_is_not_an_opt_out():
    raw = RAW.replace(b"Please take me off your list.",
                      b"Tuesday works.\r\n\r\n> To unsubscribe click here")
    assert inbound_email.parse(raw)["opt_out"] is False


def test_auto_submitted_mail_is_automatic_and_a_plain_reply_is_not():
    auto = RAW.replace(b"Subject:", b"Auto-Submitted: auto-replied\r\nSubject:")
    assert inbound_email.parse(auto)["automatic"] is True
    assert inbound_email.parse(RAW)["automatic"] is False
    ooo = RAW.replace(b"Subject: =?UTF-8?B?UmU6IFByw7N4aW1hIHJldW5pw7NuIOKAlCA=?=\r\n"
                      b" =?UTF-8?B?wr9tYXJ0ZXMgbyBtacOpcmNvbGVzPw==?=",
                      b"Subject: Automatic reply: intro")
    assert inbound_email.parse(ooo)["automatic"] is True


def test_a_message_without_message_id_is_deduplicated_by_its_bytes():
    raw = RAW.replace(b"Message-ID: <abc@example.com>\r\n", b"")
    first, second = inbound_email.parse(raw), inbound_email.parse(raw)
    assert first["message_id"] is None
    assert first["dedupe_key"] == second["dedupe_key"]
    assert first["dedupe_key"].startswith("sha256:")


def test_garbage_headers_do_not_break_parsing():
    parsed = inbound_email.parse(b"From: <<<\r\nSubject: =?bogus?Q?x?=\r\n\r\nhello")
    assert parsed["stripped_text"] == "hello"


def test_iso_8859_1_quoted_printable_body_decodes():
    raw = (b"From: a@example.net\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
           b"Content-Transfer-Encoding: quoted-printable\r\n\r\nGr=FC=DFe\r\n")
    assert inbound_email.parse(raw)["body"] == "Grüße"


# -- bounded parsing and storable text -------------------------------------------------------

def _big_reply(text_bytes, attachment_bytes):
    quote = b"> an earlier line of the quoted conversation that goes on and on\r\n"
    return (b"From: Ana Souza <ana.souza@example.com>\r\nTo: reply+7f3a-42-k2m9x1@in.example.org\r\n"
            b"Subject: Re: The contract\r\nMessage-ID: <big@example.com>\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"B\"\r\n\r\n"
            b"--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            b"Thanks, the signed contract is attached.\r\n\r\n"
            b"On Mon, 2 Mar 2026 at 10:00, Jordan Ellis <jordan@example.org> wrote:\r\n"
            + quote * (text_bytes // len(quote)) +
            b"--B\r\nContent-Type: application/pdf\r\n"
            b"Content-Disposition: attachment; filename=\"contract.pdf\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n"
            + (b"QUJD" * 19 + b"\r\n") * (attachment_bytes // 57) + b"--B--\r\n")


def test_a_huge_body_is_stored_as_a_bounded_prefix_and_stripped_on_it():
    parsed = inbound_email.parse(_big_reply(6_000_000, 5_700_000))
    assert parsed["stripped_text"] == "Thanks, the signed contract is attached."
    assert len(parsed["body"]) <= inbound_email.BODY_CHARS + 100
    assert parsed["body"].endswith(
        "[message truncated: only the first 200,000 characters are kept]")
    assert parsed["attachments"] == [{"filename": "contract.pdf",
                                      "content_type": "application/pdf", "size": 5_700_000}]


def test_a_huge_html_only_body_is_read_from_its_beginning():
    raw = (b"From: a@example.com\r\nSubject: hi\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
           b"<p>Sounds good.</p><blockquote>" + b"<p>old text</p>" * 400_000 + b"</blockquote>")
    parsed = inbound_email.parse(raw)
    assert parsed["stripped_text"] == "Sounds good."
    assert len(parsed["body"]) <= inbound_email.BODY_CHARS + 100


def test_giant_headers_are_shortened_before_parsing_and_keep_the_newest_references():
    import time
    refs = b"\r\n ".join(b"<ref-%d@example.com>" % i for i in range(100_000))
    to = b", ".join(b"person%d@example.com" % i for i in range(100_000))
    many = b"".join(b"Cc: c%d@example.com\r\n" % i for i in range(50_000))
    raw = (b"From: a@example.com\r\nTo: " + to + b"\r\nReferences: " + refs + b"\r\n" + many
           + b"Subject: " + b"word " * 200_000 + b"\r\n\r\nHello.\r\n")
    started = time.monotonic()
    parsed = inbound_email.parse(raw)
    assert time.monotonic() - started < 10
    assert parsed["references"][-1] == "<ref-99999@example.com>"
    assert len(parsed["references"]) == inbound_email.MAX_REFERENCES
    assert parsed["to"].startswith("person0@example.com, person1@example.com")
    assert len(parsed["subject"]) <= inbound_email.SUBJECT_CHARS
    assert parsed["body"] == "Hello."


def test_nul_characters_are_dropped_from_every_text():
    raw = (b"From: Ana\x00 Souza <ana.souza@example.com>\r\nSubject: Re:\x00 hello\r\n"
           b"Message-ID: <nul\x00@example.com>\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n\r\nYes\x00, Tuesday works.\r\n")
    parsed = inbound_email.parse(raw)
    assert parsed["from_name"] == "Ana Souza"
    assert parsed["subject"] == "Re: hello"
    assert parsed["stripped_text"] == "Yes, Tuesday works."
    assert "\x00" not in parsed["dedupe_key"] and "\x00" not in (parsed["message_id"] or "")


def test_sanitize_drops_nul_and_replaces_only_unpaired_surrogates():
    from services.messaging import sanitize
    assert sanitize.text("a\x00b") == "ab"
    assert sanitize.text("x\ud800y") == "x\ufffdy"
    assert sanitize.text("pair \ud83d\ude00 kept") == "pair \U0001F600 kept"
    assert sanitize.text("caf\udcc3\udca9") == "café"         # surrogate-escaped UTF-8 bytes
    assert sanitize.text("bad \udcff byte") == "bad \ufffd byte"
    assert sanitize.deep({"k\x00": ["\ud800", 3, None]}) == {"k": ["\ufffd", 3, None]}
