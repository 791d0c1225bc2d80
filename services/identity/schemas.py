"""marshmallow schemas for the identity service's RPC payloads (the gateway reuses them)."""
from marshmallow import fields, validate, validates_schema, ValidationError

from services.common.schemas import Name, Strict, one_line

ROLES = ("owner", "admin", "member", "viewer")


def _region(value):
    import phonenumbers
    if value not in phonenumbers.SUPPORTED_REGIONS:
        raise ValidationError("an ISO 3166 two-letter country code such as US")


class Base(Strict):
    """Request payloads: an unknown field is refused, naming it (services/common/schemas.Strict)."""


class OrganizationIn(Base):
    name = Name(required=True)
    description = fields.String(load_default="", validate=validate.Length(max=5000))


class OwnerIn(Base):
    name = Name(required=True)
    email = fields.Email(required=True)
    password = fields.String(required=True, load_only=True)


class SignupIn(Base):
    organization = fields.Nested(OrganizationIn, required=True)
    owner = fields.Nested(OwnerIn, required=True)


class RegisterIn(Base):
    name = Name(required=True)
    email = fields.Email(required=True)
    password = fields.String(required=True, load_only=True)


class LoginIn(Base):
    email = fields.String(required=True, validate=validate.Length(min=1, max=320))
    password = fields.String(required=True, load_only=True, validate=validate.Length(max=1024))


class MetaIn(Base):
    address = fields.String(load_default=None, allow_none=True)
    user_agent = fields.String(load_default=None, allow_none=True)


class OnboardingIn(Base):
    name = Name(required=True)
    organization_name = Name(required=True)
    organization_description = fields.String(load_default="", validate=validate.Length(max=5000))


class OrganizationPatch(Base):
    name = Name()
    slug = fields.String(validate=validate.Length(min=1, max=64))
    description = fields.String(validate=validate.Length(max=5000))
    default_timezone = fields.String()
    default_country = fields.String(validate=_region)
    mfa_required = fields.Boolean()
    auto_approve_campaign_emails = fields.Boolean()
    auto_approve_response_emails = fields.Boolean()
    default_response_campaign_id = fields.UUID(allow_none=True)


class Recipient(Base):
    """A test recipient: an e-mail address for e-mail test runs, a phone number (E.164, or
    national in the organization's default country) for SMS and call test runs; at least one."""
    email = fields.Email(load_default=None, allow_none=True)
    phone = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=40))
    name = fields.String(load_default="", validate=[
        validate.Length(max=200),
        one_line])

    @validates_schema
    def email_or_phone(self, data, **kwargs):
        if not data.get("email") and not data.get("phone"):
            raise ValidationError("give an email or a phone number", "email")


class TestRecipientsIn(Base):
    recipients = fields.List(fields.Nested(Recipient), required=True,
                             validate=validate.Length(min=1, max=50))


class TeammateIn(Base):
    email = fields.Email(required=True)
    password = fields.String(required=True, load_only=True)
    name = Name(required=True)
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    organization_id = fields.UUID(load_default=None, allow_none=True, metadata={
        "description": "the organization the teammate joins (one you are owner or admin of); "
                       "default the active organization"})


class TeammatePatch(Base):
    role = fields.String(validate=validate.OneOf(ROLES))
    locked = fields.Boolean()

    @validates_schema
    def not_empty(self, data, **kw):
        if not data:
            raise ValidationError("give role and/or locked", "_schema")


class ProfilePatch(Base):
    name = Name(required=True)


class PasswordChange(Base):
    current_password = fields.String(required=True, load_only=True)
    new_password = fields.String(required=True, load_only=True)


class ActiveOrgIn(Base):
    org_id = fields.UUID(required=True)


class MfaCode(Base):
    code = fields.String(required=True, validate=validate.Length(min=6, max=32))


class ChallengeIn(Base):
    challenge_token = fields.String(required=True)


class ChallengeCode(ChallengeIn):
    code = fields.String(required=True, validate=validate.Length(min=6, max=32))


class ApiClientIn(Base):
    name = Name(required=True)
    org_ids = fields.List(fields.UUID(), load_default=list)


class RevokeClientOptions(Base):
    everywhere = fields.Boolean(load_default=False)


class TokenRequest(Base):
    grant_type = fields.String(required=True)
    client_id = fields.String(load_default=None)
    client_secret = fields.String(load_default=None, load_only=True)
    refresh_token = fields.String(load_default=None, load_only=True)


class AuditQuery(Base):
    cursor = fields.Integer(load_default=None, validate=validate.Range(min=1, max=2 ** 63 - 1))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


class UuidParam(Base):
    id = fields.UUID(required=True)
