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
