"""Turning what people type into what the product stores: e-mail, E.164 phone, IANA zone, tags,
yes/no flags, countries. Pure functions (no database, no nameko) so they are unit-tested alone."""
import csv
import functools
import re
import zoneinfo

import phonenumbers
from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email
from phonenumbers import geocoder

CHANNELS = ("email", "sms", "phone")
# Ofcom reserves +44 7700 900000-900999 for drama; libphonenumber calls it invalid on purpose,
# but it is the only safe UK mobile range for test data, so the product accepts it.
DRAMA_RANGE = re.compile(r"^\+447700900\d{3}$")
TRUE_WORDS = {"1", "true", "t", "yes", "y", "x", "on", "unsubscribed", "opted out", "opt-out",
              "optout", "opted-out", "checked"}


class Result:
    """A normalised value and, when the input was unusable, why (`reason`, what a refused request
    says) and the warning an import reports (the reason and what the import did about it)."""

    __slots__ = ("value", "warning", "extra", "reason")

    def __init__(self, value=None, warning=None, extra=None, consequence=None):
        self.value, self.extra, self.reason = value, extra, warning
        self.warning = f"{warning}: {consequence}" if warning and consequence else warning


EMPTY = Result()  # an unmapped field


def clean(value):
    if value.__class__ is str:
        return value.strip()
    if value is None:
        return ""
    return str(value).strip()


# The plain ASCII shape nearly every address has; email-validator would accept each one (a unit
# test holds them to that), at a fraction of its cost. Anything else goes to email-validator.
_ATEXT = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]"
PLAIN_EMAIL = re.compile(rf"^{_ATEXT}+(?:\.{_ATEXT}+)*@(?:[a-z0-9](?:[a-z0-9-]{{0,61}}[a-z0-9])?\.)+[a-z]{{2,63}}$")
# A domain that is, or is under, a special-use name (`test`, `invalid`, ...): email-validator
# refuses those, so the fast path leaves them to it.
_SPECIAL = re.compile(r"(?:^|\.)(?:" + "|".join(re.escape(d) for d in SPECIAL_USE_DOMAIN_NAMES)
                      + r")$")


def _plain_email(lower):
    if len(lower) > 254 or "--" in lower or not PLAIN_EMAIL.match(lower):
        return False
    at = lower.index("@")
    if at > 64:
        return False
    return not _SPECIAL.search(lower, at + 1)


def email(value):
    """Trimmed, validated (syntax only, no DNS), lower-cased. Empty -> Result(None)."""
    raw = clean(value)
    if not raw:
        return Result()
    lower = raw.lower()
    if _plain_email(lower):
        return Result(lower)
    try:
        info = validate_email(raw, check_deliverability=False)
    except EmailNotValidError as err:
        return Result(None, f"invalid e-mail {raw!r}: {err}")
    return Result(info.normalized.lower())


@functools.lru_cache(maxsize=1)
def _country_names():
    names = {}
    for region in phonenumbers.SUPPORTED_REGIONS:
        name = geocoder._region_display_name(region, "en")
        if name:
            names[name.lower()] = region
    names.update({"uk": "GB", "great britain": "GB", "england": "GB", "scotland": "GB",
                  "wales": "GB", "usa": "US", "u.s.": "US", "u.s.a.": "US",
                  "united states of america": "US", "america": "US", "deutschland": "DE",
                  "españa": "ES", "holland": "NL", "the netherlands": "NL",
                  "south korea": "KR", "korea": "KR", "russia": "RU", "czechia": "CZ"})
    return names


def country(value):
    """ISO 3166 alpha-2 region from a code (`GB`) or an English name (`United Kingdom`)."""
    return _country(clean(value))


@functools.lru_cache(maxsize=4096)
def _country(raw):
    if not raw:
        return None
    upper = raw.upper()
    if upper in phonenumbers.SUPPORTED_REGIONS:
        return upper
    if upper == "UK":
        return "GB"
    return _country_names().get(raw.lower())


def phone(value, region="US"):
    """E.164 plus extension. The first of a ` ::: ` list (Google) is used; the rest returned as
    `extra`. Invalid numbers give a warning and no phone, never a guessed one."""
    raw = clean(value)
    if not raw:
        return Result()
    extra = None
    if ":::" in raw:
        parts = [p.strip() for p in raw.split(":::") if p.strip()]
        raw, extra = parts[0], parts[1:] or None
    fast = _plain_phone(raw, region or "US")
    if fast:
        return Result((fast, None), None, extra)
    try:
        number = phonenumbers.parse(raw, region or "US")
    except phonenumbers.NumberParseException as err:
        return Result(None, f"invalid phone {raw!r}: {err}")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if not (phonenumbers.is_valid_number(number) or DRAMA_RANGE.match(e164)):
        return Result(None, f"invalid phone {raw!r} for region {region or 'US'}",
                      consequence="dropped")
    return Result((e164, number.extension or None), None, extra)


_FORMATTING = str.maketrans("", "", " ()-./\u00a0\t")
_NANP = set(phonenumbers.COUNTRY_CODE_TO_REGION_CODE[1])


def _plain_phone(raw, region):
    """E.164 for the common shapes (`+CC ...`, NANP national) when valid for the expected region,
    without phonenumbers' full parse; None means "ask the full parser" (never "invalid")."""
    s = raw.translate(_FORMATTING)
    if s.startswith("+"):
        digits = s[1:]
    elif region in _NANP and len(s) == 10 and s[:1] in "23456789":
        digits = "1" + s
    else:
        return None
    if not (digits.isascii() and digits.isdigit()) or not 8 <= len(digits) <= 15:
        return None
    for size in (1, 2, 3):
        regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(int(digits[:size]))
        if regions:
            break
    else:
        return None
    national = digits[size:]
    if not national or national[0] == "0":
        return None  # leading zeros (Italy and others) need the full parser
    e164 = "+" + digits
    if DRAMA_RANGE.match(e164):
        return e164
    hint = region if region in regions else regions[0]
    if _valid_for_region(national, hint):
        return e164
    return None


_TYPE_DESCS = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager",
               "uan", "voicemail", "fixed_line", "mobile")


@functools.lru_cache(maxsize=None)
def _region_rules(region):
    """phonenumbers' validity rules of a region, compiled once: the general description and each
    number type's (possible lengths, national number pattern). None for regions the fast path
    leaves to phonenumbers (non-geographic entities, missing metadata)."""
    from phonenumbers.phonemetadata import PhoneMetadata
    metadata = PhoneMetadata.metadata_for_region(region)
    if metadata is None or region == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY:
        return None

    def rule(desc):
        if desc is None or not desc.national_number_pattern:
            return None
        return (frozenset(desc.possible_length or ()),
                re.compile(desc.national_number_pattern))

    general = rule(metadata.general_desc)
    if general is None:
        return None
    types = []
    for name in _TYPE_DESCS:
        if name == "mobile" and metadata.same_mobile_and_fixed_line_pattern:
            continue  # phonenumbers never tests mobile apart then
        r = rule(getattr(metadata, name))
        if r is not None:
            types.append(r)
    return general, tuple(types)


def _valid_for_region(national, region):
    """phonenumbers.is_valid_number_for_region for a national significant number (no leading
    zero) of that region's calling code: the general pattern and any number type's pattern
    match in full (with the possible lengths checked first, as phonenumbers does)."""
    rules = _region_rules(region)
    if rules is None:
        number = phonenumbers.PhoneNumber(country_code=phonenumbers.country_code_for_region(region),
                                          national_number=int(national))
        return phonenumbers.is_valid_number_for_region(number, region)
    (lengths, pattern), types = rules
    size = len(national)
    if (lengths and size not in lengths) or not pattern.fullmatch(national):
        return False
    for lengths, pattern in types:
        if (not lengths or size in lengths) and pattern.fullmatch(national):
            return True
    return False


@functools.lru_cache(maxsize=1)
def _zones():
    return {z.lower(): z for z in zoneinfo.available_timezones()}


OFFSET = re.compile(r"^(utc|gmt)?\s*[+-]\s*\d{1,2}(:?\d{2})?$", re.I)


def timezone(value):
    """IANA name, or None with a warning. HubSpot's `america_slash_new_york` converts; an
    offset (`UTC+1`, `GMT-5`) is not a zone. Cached: a file holds few distinct zones."""
    return _timezone(clean(value))


@functools.lru_cache(maxsize=4096)
def _timezone(raw):
    if not raw:
        return Result()
    candidate = raw
    if "_slash_" in raw.lower():
        candidate = "/".join(
            "_".join(w.capitalize() for w in part.split("_"))
            for part in re.split("_slash_", raw, flags=re.I))
    if OFFSET.match(raw):
        return Result(None, f"time zone {raw!r} is an offset, not an IANA zone",
                      consequence="ignored")
    zone = _zones().get(candidate.replace(" ", "_").lower())
    if zone is None:
        return Result(None, f"unknown time zone {raw!r}", consequence="ignored")
    return Result(zone)


def is_zone(value):
    return clean(value).lower() in _zones()


def flag(value):
    """A yes/no cell (`yes`, `YES`, `1`, `true`, `x`) -> bool."""
    return clean(value).lower() in TRUE_WORDS


def tags(value):
    """Split a tag cell: ` ::: ` lists (Google), quoted lists `"Q1 pilot","webinar-2026"`
    (Mailchimp), or plain comma/semicolon lists. Google's system-label star is dropped."""
    raw = clean(value)
    if not raw:
        return []
    if ":::" in raw:
        parts = raw.split(":::")
    else:
        delimiter = ";" if raw.count(";") > raw.count(",") else ","
        parts = next(csv.reader([raw], delimiter=delimiter, skipinitialspace=True), [])
    out, seen = [], set()
    for part in parts:
        title = part.strip().strip('"').strip()
        if title.startswith("* "):
            title = title[2:].strip()
        title = " ".join(title.split())
        if title and title.lower() not in seen:
            seen.add(title.lower())
            out.append(title)
    return out


TAG_CHARS = 100      # a tag's title, as POST /tags allows
TAGS_A_CONTACT = 50  # tags one record may bring


_FOLD = re.compile(r"\s\s|[^\S ]")  # two white-space characters in a row, or one not a space


def one_line(value):
    """A name on one line: runs of white space (line breaks from a multi-line CSV cell, tabs)
    become one space. (Most names have none: they are returned as they are, cheaply.)"""
    text = clean(value)
    return " ".join(text.split()) if _FOLD.search(text) else text


def full_name(first, last, name=None):
    first, last, name = one_line(first) or None, one_line(last) or None, one_line(name) or None
    if not name:
        name = " ".join(p for p in (first, last) if p) or None
    return name, first, last
