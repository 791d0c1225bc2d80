"""Template placeholders: known ones are filled from the contact, unknown ones are refused at save."""
from services.campaigns import templates


def test_first_name_is_derived_from_the_full_name():
    values = templates.values_for({"name": "Ada Lovelace King"}, {"name": "Larkspur"})
    assert values["first_name"] == "Ada"
    assert values["last_name"] == "Lovelace King"
    assert values["organization"] == "Larkspur"


def test_placeholders_with_or_without_spaces_are_filled():
    values = templates.values_for({"name": "Sam Osei", "custom": {"company": "Acme"}}, {"name": "Larkspur"})
    text = templates.render("Hi {{first_name}} at {{ custom.company }}, from {{organization}}", values)
    assert text == "Hi Sam at Acme, from Larkspur"


def test_a_placeholder_without_a_value_stays_for_the_reviewer_to_see():
    values = templates.values_for({"name": ""}, {"name": "Larkspur"})
    assert templates.render("Hi {{first_name}},", values) == "Hi {{first_name}},"


def test_unknown_placeholders_are_reported_per_field():
    errors = templates.unknown_placeholders(
        {"subject": "Hello {{frist_name}}", "body": "Hi {{first_name}} {{company}} {{company}}"})
    assert set(errors) == {"subject", "body"}
    assert "{{frist_name}}" in errors["subject"][0]
    assert "{{company}}" in errors["body"][0]
    assert errors["body"][0].count("{{company}}") == 1


def test_known_and_custom_placeholders_are_accepted():
    assert templates.unknown_placeholders(
        {"subject": "{{name}}", "preheader": "{{organization}}",
         "body": "{{first_name}} {{last_name}} {{email}} {{phone}} {{custom.plan}}"}) == {}


def test_unbalanced_braces_are_reported_per_field_with_unknown_placeholders():
    errors = templates.placeholder_errors({
        "subject": "Hi {{first_name", "preheader": "{{first_name}} ok",
        "body": "Dear name}} and {{frist_name}}"})
    assert errors == {
        "subject": ["unclosed placeholder '{{first_name': every {{ needs a matching }}"],
        "body": ["'Dear name}}' closes a placeholder that was never opened with {{",
                 "unknown placeholder {{frist_name}}; use one of {{first_name}}, {{last_name}}, "
                 "{{name}}, {{email}}, {{phone}}, {{organization}} or {{custom.<key>}}"]}


def test_well_formed_placeholders_have_no_brace_problems():
    assert templates.unbalanced_braces("Hi {{ first_name }}, {{custom.plan}} {single} braces") == []
