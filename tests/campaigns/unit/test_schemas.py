"""One rule for every campaigns request body and query string: unknown fields are refused, named,
with the field that was probably meant."""
import pytest

from services.campaigns import schemas
from services.common.errors import Invalid
from services.common.schemas import EmptyBody, load


def errors_of(schema, data):
    with pytest.raises(Invalid) as err:
        load(schema, data)
    return err.value.errors


def test_reject_takes_note_and_says_so_when_given_reason():
    assert errors_of(schemas.NoteSchema(), {"reason": "off brand"}) == {
        "reason": ["unknown field; did you mean note?"]}
    assert load(schemas.NoteSchema(), {"note": "off brand"}) == {"note": "off brand"}


def test_every_request_schema_refuses_unknown_fields():
    request_schemas = [schemas.GoalSchema, schemas.TemplateSchema, schemas.AgentSchema,
                       schemas.CampaignSchema, schemas.StartRunSchema, schemas.PreflightQuery,
                       schemas.NoteSchema, EmptyBody, schemas.PageQuery, schemas.AgentQuery,
                       schemas.TemplateQuery, schemas.CampaignQuery, schemas.RunQuery,
                       schemas.DraftQuery]
    for cls in request_schemas:
        assert issubclass(cls, schemas.Strict), cls
        errors = errors_of(cls(), {"zz_unknown": 1})
        assert errors["zz_unknown"][0].startswith("unknown field; "), cls


def test_a_misspelt_field_gets_the_right_name():
    assert errors_of(schemas.PageQuery(), {"cursor": "x"}) == {"cursor": ["unknown field; did you mean after?"]}
    assert errors_of(schemas.CampaignSchema(), {"name": "C", "channel": "sms", "goal": "x"}) == {
        "goal": ["unknown field; did you mean goal_id?"]}
