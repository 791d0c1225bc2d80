"""What the person actually wrote in a reply: the quoted original, the attribution line that
introduces it, mail-client footers and `-- ` signatures are cut off; HTML becomes plain text."""
import re

from bs4 import BeautifulSoup, NavigableString, Comment

# "On <date> <name> wrote:" in the languages our senders meet most; Gmail wraps it after "<",
# so it is matched over up to three joined lines.
_ATTRIBUTION = re.compile(
    r"^(on|am|el|le|il|op|em|den|w dniu|dne|в)\b.{0,300}?"
    r"\b(wrote|schrieb|escribió|a écrit|ha scritto|schreef|escreveu|skrev|napisał|napsal|написал)\b"
    r".{0,300}?:$",
    re.IGNORECASE,
)
# Outlook's header block ("From: ... / Sent: ... / To: ... / Subject: ...") in a few languages.
_HEADER_FROM = re.compile(r"^\*?(from|von|de|da|van|od|från|fra)\s?:\*?\s", re.IGNORECASE)
_HEADER_NEXT = re.compile(
    r"^\*?(sent|date|to|subject|cc|gesendet|datum|an|betreff|enviado|fecha|para|asunto|envoyé|"
    r"objet|à|inviato|oggetto|a)\s?:\*?", re.IGNORECASE)
_SEPARATORS = re.compile(
    r"^(-{2,}\s*(original message|ursprüngliche nachricht|mensaje original|message d'origine|"
    r"messaggio originale)\s*-{2,}|_{20,})\s*$", re.IGNORECASE)
# Mobile footers: everything from here on is boilerplate.
_FOOTERS = re.compile(
    r"^(sent from my (iphone|ipad|android|samsung|mobile|phone)|sent from (outlook|mail) for \w+|"
    r"get outlook for \w+|von meinem (iphone|ipad|smartphone) gesendet|"
    r"enviado desde mi (iphone|ipad|móvil|celular)|envoyé de mon (iphone|ipad))\b.*$",
    re.IGNORECASE)


def normalize(text):
    """CRLF to LF, no byte-order marks, no trailing spaces, no leading/trailing blank lines."""
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "")
    lines = [line.rstrip() for line in text.split("\n")]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def strip_reply(text):
    """The new text of a reply, without quote, attribution, signature or mobile footer."""
    lines = normalize(text).split("\n")
    cut = len(lines)
    for i, line in enumerate(lines):
        if _is_cut(lines, i):
            cut = i
            break
    return normalize("\n".join(lines[:cut]))


def _is_cut(lines, i):
    line = lines[i].strip()
    if not line:
        return False
    if line.startswith(">"):
        return True
    if lines[i].rstrip() == "--" or lines[i] == "-- ":
        return True
    if _SEPARATORS.match(line) or _FOOTERS.match(line):
        return True
    for span in (1, 2, 3):
        joined = " ".join(part.strip() for part in lines[i:i + span])
        if _ATTRIBUTION.match(joined):
            return True
    if _HEADER_FROM.match(line):
        following = [l.strip() for l in lines[i + 1:i + 5] if l.strip()]
        if sum(1 for l in following if _HEADER_NEXT.match(l)) >= 2:
            return True
    return False


def unflow(text, delsp=False):
    """RFC 3676 format=flowed: a line ending in a space continues on the next one (the `-- `
    signature separator excepted); space-stuffing is undone."""
    out = []
    buffer = None
    for line in text.replace("\r\n", "\n").split("\n"):
        if line.startswith(" "):
            line = line[1:]
        flowed = line.endswith(" ") and line != "-- "
        if flowed and delsp:
            line = line[:-1]
        buffer = line if buffer is None else buffer + line
        if not flowed:
            out.append(buffer)
            buffer = None
    if buffer is not None:
        out.append(buffer)
    return "\n".join(out)


_BLOCKS = {"address", "article", "aside", "blockquote", "div", "dl", "dt", "dd", "fieldset",
           "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li",
           "main", "nav", "ol", "p", "pre", "section", "table", "tr", "ul"}
_SKIP = {"head", "script", "style", "title", "meta", "link"}


def html_to_text(html):
    """Readable text from an HTML body: block elements and <br> become line breaks, whitespace
    collapses as a browser would, blockquotes become `> ` quoted lines."""
    soup = BeautifulSoup(html or "", "html.parser")
    return normalize(_render(soup).replace("\xa0", " "))


def _render(node):
    parts = []

    def newline():
        if parts and not parts[-1].endswith("\n"):
            parts.append("\n")

    for child in node.children:
        if isinstance(child, Comment):
            continue
        if isinstance(child, NavigableString):
            parts.append(re.sub(r"\s+", " ", str(child)))
            continue
        name = (child.name or "").lower()
        if name in _SKIP:
            continue
        if name == "br":
            parts.append("\n")
            continue
        if name == "blockquote":
            newline()
            inner = normalize(_render(child))
            parts.append("\n".join("> " + l if l else ">" for l in inner.split("\n")) + "\n")
            continue
        if name in _BLOCKS:
            newline()
            parts.append(_render(child))
            newline()
            continue
        parts.append(_render(child))
    text = "".join(parts)
    # A line's leading space left over from collapsed source whitespace is noise.
    return "\n".join(l.lstrip(" ") for l in text.split("\n"))
