"""Template placeholders: which ones exist, checking a template at save, filling them from a contact."""
import re

# {{ first_name }}, spaces optional. Anything else between double braces is a placeholder too,
# so a typo like {{frist_name}} is caught at save instead of reaching a contact.
PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")

KNOWN = ("first_name", "last_name", "name", "email", "phone", "organization")
# Contact custom data: {{custom.company}}. Unknown keys stay unresolved and the reviewer flags them.
CUSTOM = re.compile(r"^custom\.[A-Za-z0-9_\- ]{1,64}$")

TEMPLATE_FIELDS = ("subject", "preheader", "body")


def placeholders(text):
    return [m.group(1) for m in PLACEHOLDER.finditer(text or "")]


def is_known(name):
    return name in KNOWN or bool(CUSTOM.match(name))


def unknown_placeholders(fields):
    """{field: [message]} for every template field that uses a placeholder we cannot fill."""
    errors = {}
    for field in TEMPLATE_FIELDS:
        bad = [p for p in placeholders(fields.get(field)) if not is_known(p)]
        if bad:
            names = ", ".join("{{%s}}" % p for p in dict.fromkeys(bad))
            errors[field] = [f"unknown placeholder {names}; use one of "
                             + ", ".join("{{%s}}" % k for k in KNOWN) + " or {{custom.<key>}}"]
    return errors


def unbalanced_braces(text):
    """What is left of `{{` / `}}` once every well-formed placeholder is taken out: an unclosed
    `{{first_name` or a stray `}}` would reach a contact as written."""
    rest = PLACEHOLDER.sub(" ", text or "")
    problems = []
    opening = rest.find("{{")
    if opening >= 0:
        snippet = rest[opening:opening + 30].split("\n")[0].rstrip()
        problems.append(f"unclosed placeholder {snippet!r}: every {{{{ needs a matching }}}}")
    closing = rest.find("}}")
    if closing >= 0 and (opening < 0 or closing < opening):
        start = max(0, closing - 28)
        snippet = rest[start:closing + 2].split("\n")[-1].lstrip()
        problems.append(f"{snippet!r} closes a placeholder that was never opened with {{{{")
    return problems


def placeholder_errors(fields):
    """{field: [message]}: unbalanced braces and placeholders we cannot fill, per field."""
    errors = {}
    for field in TEMPLATE_FIELDS:
        problems = unbalanced_braces(fields.get(field))
        if problems:
            errors[field] = problems
    for field, messages in unknown_placeholders(fields).items():
        errors.setdefault(field, []).extend(messages)
    return errors


def first_name(name):
    parts = (name or "").strip().split()
    return parts[0] if parts else ""


def last_name(name):
    parts = (name or "").strip().split()
    return " ".join(parts[1:]) if len(parts) > 1 else ""


def values_for(contact, organization):
    """The placeholder values for one recipient; empty values are left out (so stay unresolved)."""
    name = (contact.get("name") or "").strip()
    values = {
        "name": name,
        "first_name": (contact.get("first_name") or "").strip() or first_name(name),
        "last_name": (contact.get("last_name") or "").strip() or last_name(name),
        "email": contact.get("email") or "",
        "phone": contact.get("phone") or "",
        "organization": (organization or {}).get("name") or "",
    }
    for key, value in (contact.get("custom") or {}).items():
        if value not in (None, ""):
            values[f"custom.{key}"] = str(value)
    return {k: v for k, v in values.items() if v}


def render(text, values):
    """Fill known placeholders; an unfillable one is left as written for the reviewer to flag."""
    def fill(match):
        return values.get(match.group(1), match.group(0))

    return PLACEHOLDER.sub(fill, text or "")
