"""The route list the generated matrices walk, and valid request bodies built from each route's own
marshmallow schema: required fields, every field that names an id (filled with the target
organization's real ids), and fields with a known-good sample value (FIELD_SAMPLES)."""
import datetime as dt
import itertools
import re

from marshmallow import ValidationError, fields as mf, validate as mv

from gateway import create_app
from scripts.roles_doc import api_routes
from tests.identity.helpers import PASSWORD

PARAM = re.compile(r"<(?:[a-z_]+:)?([a-z_]+)>")
BODY_METHODS = {"POST", "PUT", "PATCH"}

# Every organization route of the API (public routes check their own credentials).
ROUTES = [(m, rule, meta) for m, rule, meta in api_routes(create_app())
          if rule.startswith("/api/v1/") and meta["permission"] != "public"]

SFTP_FILE = "contacts.csv"   # the file the matrix's SFTP server offers (tests/identity/matrix_fixtures.py)
NEW_PASSWORD = "matrix-changed-horse-7"
_serial = itertools.count(1)


def unique():
    """A short suffix that makes names, titles and addresses unique across the whole test run."""
    return f"{next(_serial):04d}"


def params(rule):
    return PARAM.findall(rule)


def is_id_param(name):
    """Path parameters that name a row (`provider`, `channel` name a kind, not a row)."""
    return name.endswith("_id") or name.endswith("_pk")


def names_an_id(name):
    return name == "id" or name.endswith("_id") or name.endswith("_ids")


def fill_path(rule, values):
    """The rule with each parameter replaced by values[param]."""
    return PARAM.sub(lambda m: str(values[m.group(1)]), rule)


# Values a field of this name needs to get past the product's own rules (beyond the schema), and
# optional fields worth sending. Each takes the target organization (see Org.id_for) and the
# call's unique suffix. A field named here is always sent.
FIELD_SAMPLES = {
    # A contact needs an e-mail or a phone; a test recipient, sender or teammate needs an address.
    "email": lambda org, u: f"matrix-{u}-{org.label}@example.org",
    # An e-mail template needs a subject.
    "subject": lambda org, u: f"Hello {u}",
    # Every manager may grant member (only an owner grants owner).
    "role": lambda org, u: "member",
    # A segment's rules name a tag: the nested id the tenant matrix aims at another org's tag.
    "rules": lambda org, u: [{"type": "has_tag", "tag_id": org.id_for("tag_id")}],
    "password": lambda org, u: PASSWORD,
    "current_password": lambda org, u: PASSWORD,
    "new_password": lambda org, u: NEW_PASSWORD,
    # The outgoing SMTP provider stays the test stack's sink (the matrix's drafts are sent).
    "host": lambda org, u: "127.0.0.1",
    "port": lambda org, u: org.smtp_port,
    "tls_mode": lambda org, u: "none",
    # Twilio credentials in token form, with a number (formats the schema checks).
    "account_sid": lambda org, u: "AC" + "0" * 32,
    "auth_token": lambda org, u: "matrix-auth-token",
    "phone_number": lambda org, u: "+12025550143",
    # Webhook secrets a provider integration needs before it is connected.
    "signing_key": lambda org, u: "matrix-signing-key",
    "inbound_password": lambda org, u: "matrix-inbound-password",
    "files": lambda org, u: [SFTP_FILE],
}
# Samples that carry ids (the tenant matrix expects them refused when they are another org's).
ID_SAMPLES = {"rules"}


def _sample_text(field, name, u):
    length = next((v for v in field.validators if isinstance(v, mv.Length)), None)
    text = f"matrix {name} {u}"
    if length is not None and length.min and len(text) < length.min:
        text = text.ljust(length.min, "x")
    if length is not None and length.max is not None:
        text = text[:length.max]
    return text


def _sample(field, name, org, id_fields, path, u):
    """A value the field accepts; id fields get the org's ids and are remembered in id_fields."""
    top = path.split(".")[0]
    if name in FIELD_SAMPLES:
        if name in ID_SAMPLES:
            id_fields.add(top)
        return FIELD_SAMPLES[name](org, u)
    choice = next((v for v in field.validators if isinstance(v, mv.OneOf)), None)
    if choice is not None:
        return list(choice.choices)[0]
    if isinstance(field, mf.Nested):
        return _fill(field.schema, org, id_fields, f"{path}.", u)
    if isinstance(field, mf.List):
        length = next((v for v in field.validators if isinstance(v, mv.Length)), None)
        count = max(1, (length.min or 1) if length else 1)
        return [_sample(field.inner, name, org, id_fields, path, u) for _ in range(count)]
    if names_an_id(name) and not isinstance(field, (mf.Integer, mf.Boolean)):
        id_fields.add(top)
        return org.id_for(name)
    if isinstance(field, mf.Email):
        return f"matrix-{u}-{org.label}@example.org"
    if isinstance(field, mf.UUID):
        id_fields.add(top)
        return org.id_for(name)
    if isinstance(field, mf.Url):
        return "https://example.org/matrix"
    if isinstance(field, mf.Boolean):
        return False
    if isinstance(field, (mf.Integer, mf.Float, mf.Decimal)):
        rng = next((v for v in field.validators if isinstance(v, mv.Range)), None)
        return rng.min if rng is not None and rng.min is not None else 1
    if isinstance(field, mf.DateTime):
        return dt.datetime.now(dt.timezone.utc).isoformat()
    if isinstance(field, mf.Date):
        return dt.date.today().isoformat()
    if isinstance(field, mf.Dict):
        return {}
    return _sample_text(field, name, u)


def _fill(schema, org, id_fields, prefix, u, required_only=True):
    body = {}
    for name, field in schema.fields.items():
        if field.dump_only:
            continue
        key = field.data_key or name
        if not required_only or field.required or names_an_id(name) or name in FIELD_SAMPLES:
            body[key] = _sample(field, name, org, id_fields, f"{prefix}{key}", u)
    return body


def valid_body(schema, org):
    """(body, id fields) for the schema, aimed at `org` (its ids, its SMTP sink): the required
    fields, the fields that name ids, the fields FIELD_SAMPLES knows, and, when the schema still
    refuses that (a schema-level rule such as "give one of"), every field. The body must load."""
    if schema is None:
        return None, set()
    u = unique()
    id_fields = set()
    body = _fill(schema, org, id_fields, "", u)
    try:
        schema.load(body)
        return body, id_fields
    except ValidationError:
        pass
    id_fields = set()
    body = _fill(schema, org, id_fields, "", u, required_only=False)
    schema.load(body)  # raises: the generator cannot build a valid body for this schema
    return body, id_fields


def query_ids(schema, org):
    """{field: id} for the query-string filters that name ids (`campaign_id`, `tag_id`, ...)."""
    if schema is None:
        return {}
    return {(f.data_key or n): org.id_for(n) for n, f in schema.fields.items()
            if names_an_id(n) and isinstance(f, mf.UUID)}
