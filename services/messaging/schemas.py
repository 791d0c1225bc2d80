"""Marshmallow schemas for messaging's RPC payloads and the events it consumes."""
import re

from email_validator import EmailNotValidError, validate_email
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates, post_load

from services.common.schemas import AwareTimestamp, Name, Strict
from services.messaging.communications import DIRECTIONS, STATUSES
from services.messaging.settings import CHANNELS, TLS_MODES

HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
                      r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def _email(value):
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as err:
        raise ValidationError(str(err))


class SenderIdentitySchema(Strict):
    # A request payload: an unknown field is refused, naming it.

    name = Name(required=True)  # trimmed, one line, not blank
    email = fields.String(required=True, validate=validate.Length(max=320))
    # Optional: the domain whose mail reaches our inbound webhook (reply tokens, VERP bounces).
    reply_domain = fields.String(load_default=None, allow_none=True)

    @validates("reply_domain")
    def _domain(self, value, **kwargs):
        if value is not None and not HOSTNAME.match(value):
            raise ValidationError("not a valid domain name")

    @post_load
    def _normalize(self, data, **kwargs):
        try:
            data["email"] = _email(data["email"])
        except ValidationError as err:
            raise ValidationError({"email": err.messages})
        if data.get("reply_domain"):
            data["reply_domain"] = data["reply_domain"].lower()
        return data


class EmailProviderSchema(Strict):
    # A request payload: an unknown field is refused, naming it.

    kind = fields.String(required=True, validate=validate.OneOf(["smtp"]))
    host = fields.String(required=True, validate=validate.Length(min=1, max=253))
    port = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=65535))
    username = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=320))
    # Left out on an update, the stored password is kept.
    password = fields.String(load_default=None, allow_none=True, load_only=True,
                             validate=validate.Length(max=1000))
    tls_mode = fields.String(required=True, validate=validate.OneOf(TLS_MODES))

    @validates("host")
    def _host(self, value, **kwargs):
        if not HOSTNAME.match(value) and not re.match(r"^\d{1,3}(\.\d{1,3}){3}$", value):
            raise ValidationError("not a valid host name")


class IncomingEmailSkipSchema(Schema):
    """Defer (true) the optional incoming-email step of Going Live, or undo that (false)."""
    skipped = fields.Boolean(required=True, truthy={True}, falsy={False})


class ChannelSchema(Schema):
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))


class CommunicationFiltersSchema(Strict):
    # A request payload: an unknown field is refused, naming it.

    channel = fields.String(validate=validate.OneOf(("email", "sms", "phone", "call")))
    direction = fields.String(validate=validate.OneOf(DIRECTIONS))
    status = fields.String(validate=validate.OneOf(STATUSES))
    is_test = fields.Boolean()
    campaign_id = fields.UUID()
    run_id = fields.UUID()
    contact_id = fields.UUID()
    thread_id = fields.UUID()
    since = AwareTimestamp(default_timezone=None)
    until = AwareTimestamp(default_timezone=None)
    # The keyset cursor: the previous page's next_cursor. `cursor` is its deprecated alias.
    after = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500))
    cursor = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


class DraftSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    draft_id = fields.UUID(required=True)
    contact_id = fields.UUID(load_default=None, allow_none=True)
    to_address = fields.String(required=True)
    to_name = fields.String(load_default=None, allow_none=True)
    subject = fields.String(load_default="", allow_none=True)
    body = fields.String(load_default="", allow_none=True)


class DraftsApprovedSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    event_id = fields.String(required=True)
    org_id = fields.UUID(required=True)
    run_id = fields.UUID(load_default=None, allow_none=True)
    campaign_id = fields.UUID(load_default=None, allow_none=True)
    channel = fields.String(load_default="email")
    is_test = fields.Boolean(load_default=False)
    drafts = fields.List(fields.Nested(DraftSchema), required=True)

    @post_load
    def _strings(self, data, **kwargs):
        for key in ("org_id", "run_id", "campaign_id"):
            if data.get(key) is not None:
                data[key] = str(data[key])
        for draft in data["drafts"]:
            draft["draft_id"] = str(draft["draft_id"])
            if draft.get("contact_id") is not None:
                draft["contact_id"] = str(draft["contact_id"])
        return data


# -- provider integrations (webhooks, SMS) --------------------------------------------------

PROVIDERS = ("twilio", "sendgrid", "mailgun", "postmark")


def _e164(value):
    import phonenumbers
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise ValidationError("an international number with its country code, such as "
                              "+12025550100")
    formatted = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    # NANP fiction (555-01xx) and Ofcom drama ranges are not "valid" to libphonenumber but are
    # real-format test numbers; accept any number libphonenumber can at least place.
    if not (phonenumbers.is_valid_number(number) or phonenumbers.is_possible_number(number)):
        raise ValidationError("not a possible phone number")
    return formatted


class TwilioSettingsSchema(Strict):
    """Twilio-style credentials in token form (Account SID + Auth Token) or key/secret form
    (Account SID + API Key SID + secret). Webhook signatures are always made with the account's
    Auth Token, so webhooks need it in either form. Secrets left out keep their stored value."""
    # A request payload: an unknown field is refused, naming it.

    account_sid = fields.String(required=True, validate=validate.Regexp(r"^AC[0-9a-fA-F]{32}$",
                                error="an Account SID: AC followed by 32 hex digits"))
    credential_style = fields.String(load_default="token",
                                     validate=validate.OneOf(("token", "api_key")))
    auth_token = fields.String(load_default=None, allow_none=True, load_only=True,
                               validate=validate.Length(min=8, max=200))
    api_key_sid = fields.String(load_default=None, allow_none=True,
                                validate=validate.Regexp(r"^SK[0-9a-fA-F]{32}$",
                                                         error="an API Key SID: SK + 32 hex digits"))
    api_key_secret = fields.String(load_default=None, allow_none=True, load_only=True,
                                   validate=validate.Length(min=8, max=200))
    phone_number = fields.String(load_default=None, allow_none=True)
    messaging_service_sid = fields.String(
        load_default=None, allow_none=True,
        validate=validate.Regexp(r"^MG[0-9a-fA-F]{32}$",
                                 error="a Messaging Service SID: MG followed by 32 hex digits"))

    @validates("phone_number")
    def _phone(self, value, **kwargs):
        if value:
            _e164(value)

    @post_load
    def _normalize(self, data, **kwargs):
        if data.get("phone_number"):
            data["phone_number"] = _e164(data["phone_number"])
        return data


class SendGridSettingsSchema(Strict):
    """Event Webhook verification key (base64 DER, as SendGrid shows it) and the basic-auth
    credentials put in the Inbound Parse URL."""
    # A request payload: an unknown field is refused, naming it.

    event_verification_key = fields.String(load_default=None, allow_none=True,
                                           validate=validate.Length(max=2000))
    inbound_username = fields.String(load_default=None, allow_none=True,
                                     validate=validate.Length(min=1, max=200))
    inbound_password = fields.String(load_default=None, allow_none=True, load_only=True,
                                     validate=validate.Length(min=8, max=200))

    @validates("event_verification_key")
    def _key(self, value, **kwargs):
        from services.messaging.signatures import sendgrid_public_key
        if value:
            try:
                sendgrid_public_key(value)
            except ValueError as err:
                raise ValidationError(str(err))


class MailgunSettingsSchema(Strict):
    # A request payload: an unknown field is refused, naming it.

    signing_key = fields.String(load_default=None, allow_none=True, load_only=True,
                                validate=validate.Length(min=8, max=200))
    # How far a webhook's timestamp may be from our clock; null switches the check off.
    timestamp_tolerance_seconds = fields.Integer(load_default=900, allow_none=True, strict=True,
                                                 validate=validate.Range(min=1, max=7 * 86400))


class PostmarkSettingsSchema(Strict):
    # A request payload: an unknown field is refused, naming it.

    inbound_username = fields.String(required=True, validate=validate.Length(min=1, max=200))
    inbound_password = fields.String(load_default=None, allow_none=True, load_only=True,
                                     validate=validate.Length(min=8, max=200))


PROVIDER_SCHEMAS = {"twilio": TwilioSettingsSchema, "sendgrid": SendGridSettingsSchema,
                    "mailgun": MailgunSettingsSchema, "postmark": PostmarkSettingsSchema}


class ProviderSchema(Schema):
    provider = fields.String(required=True, validate=validate.OneOf(PROVIDERS))
