"""Generated documentation stays true to the code."""
from gateway import create_app
from scripts import roles_doc


def test_role_matrix_doc_lists_every_route_with_its_roles():
    with open(roles_doc.DOC) as f:
        assert f.read() == roles_doc.render(create_app()), \
            "docs/roles.md is out of date: run `make docs`"


def test_every_api_route_is_in_the_openapi_document():
    from gateway.openapi import build_spec
    app = create_app()
    spec = build_spec(app)
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    for method, rule, _ in roles_doc.api_routes(app):
        path = rule.replace("<", "{").replace(">", "}")
        path = __import__("re").sub(r"\{[a-z_]+:", "{", path)
        assert (path, method.lower()) in documented, (method, rule)
