"""Quote, attribution and signature stripping, and HTML to text, without any broker."""
from services.messaging.reply_text import html_to_text, normalize, strip_reply, unflow


def test_gmail_attribution_wrapped_after_angle_bracket_is_cut():
    text = ("Thanks, Tuesday works.\r\n\r\nOn Mon, Nov 30, 2026 at 10:02\u202fAM Jordan Ellis <\r\n"
            "jordan.ellis@example.org> wrote:\r\n\r\n> Hi Ana,\r\n")
    assert strip_reply(text) == "Thanks, Tuesday works."


def test_german_gmail_attribution_is_cut():
    text = ("Hallo Jordan,\n\ndanke.\n\nAm Mo., 30. Nov. 2026 um 16:02 Uhr schrieb Jordan Ellis <\n"
            "jordan.ellis@example.org>:\n\n> Hallo Jonas,\n")
    assert strip_reply(text) == "Hallo Jordan,\n\ndanke."


def test_spanish_attribution_is_cut():
    text = "Hola,\n\nSí.\n\nEl 2026-11-30 17:02, Jordan Ellis escribió:\n> Hola José,\n"
    assert strip_reply(text) == "Hola,\n\nSí."


def test_outlook_header_block_is_cut_but_signature_above_it_stays():
    text = ("Hi Jordan,\n\nyes.\n\nRegards\nTom\n\nFrom: Jordan Ellis <jordan.ellis@example.org>\n"
            "Sent: Monday, November 30, 2026 4:02 PM\nTo: Becker, Tom <t.becker@example.net>\n"
            "Subject: Pricing\n\nHi Tom,\n")
    assert strip_reply(text) == "Hi Jordan,\n\nyes.\n\nRegards\nTom"


def test_a_from_line_alone_is_not_a_quote_header():
    text = "From: the team in Lisbon, thanks!\nSee you soon."
    assert strip_reply(text) == text


def test_dash_dash_space_signature_is_cut():
    assert strip_reply("Sure.\n\nRaj\n\n-- \nRaj Malhotra | Head of Data") == "Sure.\n\nRaj"


def test_sent_from_my_iphone_and_byte_order_marks_are_removed():
    text = "Sounds good.\n\nSent from my iPhone\n\n> On Nov 30 wrote:\n> \ufeffHi Emily,"
    assert strip_reply(text) == "Sounds good."
    assert "\ufeff" not in strip_reply("\ufeffHello")


def test_apple_quoted_attribution_starts_the_quote():
    text = "Merci !\n\nChloé\n\n> On 30 Nov 2026, at 17:02, Jordan Ellis <j@example.org> wrote:\n>\n> Hi"
    assert strip_reply(text) == "Merci !\n\nChloé"


def test_original_message_separator_is_cut():
    assert strip_reply("Yes.\n\n-----Original Message-----\nFrom: x") == "Yes."


def test_normalize_drops_crlf_trailing_spaces_and_outer_blank_lines():
    assert normalize("\r\n\r\nHi  \r\nthere \r\n\r\n") == "Hi\nthere"


def test_format_flowed_lines_are_joined_but_signature_separator_is_not():
    assert unflow("This is a \nlong line.\n-- \nSig") == "This is a long line.\n-- \nSig"


def test_html_divs_and_breaks_become_lines_and_blockquotes_become_quotes():
    html = ("<div>Hi Jordan,</div><div><br></div><div>Thursday?</div><div><br></div>"
            "<div>Grace</div><blockquote>Hi Grace,<br>\n<br>\nOld text</blockquote>")
    assert html_to_text(html) == "Hi Jordan,\n\nThursday?\n\nGrace\n> Hi Grace,\n>\n> Old text"
    assert strip_reply(html_to_text(html)) == "Hi Jordan,\n\nThursday?\n\nGrace"


def test_html_entities_and_non_breaking_spaces_are_plain_text():
    assert html_to_text("<p>Gr&uuml;&szlig;e&nbsp;/ Regards</p><p>&nbsp;</p>") == "Grüße / Regards"
