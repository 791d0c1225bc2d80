"""Every route's body and query schema refuses a field it does not know (400 naming it), from
the route list itself: a new route is covered without anyone remembering."""
from gateway.app import create_app


def route_schemas():
    app = create_app()
    out = []
    for rule in app.url_map.iter_rules():
        meta = getattr(app.view_functions[rule.endpoint], "openapi", None)
        if not meta:
            continue
        for kind in ("body", "query"):
            if meta.get(kind) is not None:
                out.append((f"{sorted(rule.methods - {'HEAD', 'OPTIONS'})} {rule.rule} {kind}", meta[kind]))
    return out


def test_every_body_and_query_schema_refuses_unknown_fields():
    schemas = route_schemas()
    assert len(schemas) > 60
    lax = []
    for where, schema in schemas:
        errors = schema.validate({"zz_unknown_field": 1})
        if not str(errors.get("zz_unknown_field", [""])[0]).startswith("unknown field"):
            lax.append(where)
    assert lax == []
