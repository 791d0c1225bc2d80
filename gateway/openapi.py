"""The OpenAPI document, generated from the routes' marshmallow schemas (never written by hand)."""
import re

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import current_app

_PARAM = re.compile(r"<(?:[a-z_]+:)?([a-z_]+)>")


def _name_resolver():
    """Component names: the class name, qualified by its module when two classes share a name
    (gateway.routes.contacts.ContactIn and services.contacts.schemas.ContactIn)."""
    taken = {}

    def resolve(schema):
        cls = schema if isinstance(schema, type) else type(schema)
        name = cls.__name__
        if name.endswith("Schema") and len(name) > 6:
            name = name[:-6]
        if not isinstance(schema, type):
            # The same class with other modifiers is another component (PATCH bodies).
            if getattr(schema, "partial", False) and not name.endswith("Patch"):
                name += "Patch"
            if getattr(schema, "only", None) or getattr(schema, "exclude", None):
                name += "Part"
        owner = taken.setdefault(name, cls)
        if owner is not cls:
            name = "".join(p.capitalize() for p in cls.__module__.split(".")[-2:]) + name
            taken.setdefault(name, cls)
        return name

    return resolve


def build_spec(app):
    spec = APISpec(
        title="Outreach API", version="1.0.0", openapi_version="3.0.3",
        plugins=[MarshmallowPlugin(schema_name_resolver=_name_resolver())],
        info={"description": "REST API of the outreach platform. Every /api/v1 call except sign-up "
                             "and sign-in needs `Authorization: Bearer <token>`; choose the "
                             "organization with `X-Organization-Id`."},
    )
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        view = app.view_functions.get(rule.endpoint)
        meta = getattr(view, "openapi", None)
        if meta is None:
            continue
        path = _PARAM.sub(r"{\1}", rule.rule)
        operations = {}
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            op = {
                "summary": meta["summary"], "tags": meta["tags"],
                "x-permission": meta["permission"],
                "responses": {str(meta["status"]): {"description": "success"},
                              "4XX": {"description": "JSON error naming the problem"}},
            }
            params = [{"in": "path", "name": n, "required": True, "schema": {"type": "string"}}
                      for n in _PARAM.findall(rule.rule)]
            if meta["query"] is not None:
                params.append({"in": "query", "schema": meta["query"]})
            if params:
                op["parameters"] = params
            if meta["permission"] != "public":
                op["security"] = [{"bearer": []}]
            if meta["body"] is not None:
                body = meta["body"]
                required = any(f.required for f in getattr(body, "fields", {}).values())
                op["requestBody"] = {"required": required, "content": {
                    "application/json": {"schema": meta["body"]}}}
            if meta.get("form") is not None:
                content = {"multipart/form-data": {"schema": meta["form"]}}
                if meta.get("json_body") is not None:
                    content["application/json"] = {"schema": meta["json_body"]}
                op["requestBody"] = {"required": True, "content": content}
            if meta["response"] is not None:
                schema = meta["response"]
                content = {"schema": {"type": "array", "items": schema}} if meta["many"] \
                    else {"schema": schema}
                op["responses"][str(meta["status"])]["content"] = {"application/json": content}
            operations[method.lower()] = op
        spec.path(path=path, operations=operations)
    return spec.to_dict()


def openapi_json():
    # Routes are fixed once the app is built, so the document is built once per process.
    cached = current_app.extensions.get("openapi")
    if cached is None:
        cached = current_app.extensions["openapi"] = build_spec(current_app)
    return cached
