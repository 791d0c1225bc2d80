"""The `endpoint` decorator every API route uses: authenticate, check the route's permission,
parse and validate the JSON body and query string with marshmallow, call the view, shape the
response. It also records what the OpenAPI document says about the route."""
import functools
import json
import math

from flask import jsonify, request, Response
from marshmallow import ValidationError

from gateway import auth
from gateway.errors import ApiError
from gateway.permissions import PERMISSIONS


def endpoint(permission, body=None, query=None, response=None, status=200, summary="",
             tags=None, many=False, org_scoped=True, form=None, json_body=None):
    """permission: a key of PERMISSIONS, or "public" (no sign-in) or "signed_in" (no org needed).

    The view is called with `body=` and/or `query=` (validated dicts) when schemas are given.
    It returns plain data (serialized as JSON with `status`), or a Flask Response.
    `form` (an OpenAPI schema) and `json_body` (a schema) only document bodies a view reads
    itself: a multipart form, and the JSON it also takes.
    """
    if permission not in PERMISSIONS and permission not in ("public", "signed_in"):
        raise ValueError(f"unknown permission {permission}")

    def decorate(view):
        @functools.wraps(view)
        def wrapper(**kwargs):
            if permission != "public":
                auth.authenticate(permission, org_scoped=org_scoped)
            if body is not None:
                kwargs["body"] = _load(body, _json_body(), "body")
            if query is not None:
                kwargs["query"] = _load(query, _query_args(query), "query")
            result = view(**kwargs)
            if isinstance(result, Response):
                return result
            if isinstance(result, tuple):
                result, code = result
            else:
                code = status
            if result is None and code == 204:
                return Response(status=204)
            return jsonify(result), code

        wrapper.openapi = {
            "permission": permission, "body": body, "query": query, "response": response,
            "status": status, "summary": summary or (view.__doc__ or "").strip().split("\n")[0],
            "tags": tags or [], "many": many, "org_scoped": org_scoped,
            "form": form, "json_body": json_body,
        }
        return wrapper

    return decorate


MAX_DEPTH = 32


def _json_body():
    raw = request.get_data(cache=True)
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        reason = str(err)
        if "integer string conversion" in reason:  # Python's own advice is not for clients
            reason = "a number has more than 4,300 digits"
        raise ApiError(400, "malformed_json", f"request body is not valid JSON: {reason}")
    except RecursionError:
        raise ApiError(400, "malformed_json", f"request body nests deeper than {MAX_DEPTH} levels")
    if not isinstance(data, dict):
        raise ApiError(400, "malformed_json", "request body must be a JSON object")
    problems = unstorable(data)
    if problems:
        raise ApiError(400, "invalid", "invalid body", errors=problems)
    return data


def unstorable(data):
    """{path: [reason]} for values no database can store faithfully: NUL characters, lone UTF-16
    surrogates, and nesting deeper than MAX_DEPTH. Walks iteratively (no recursion limit)."""
    problems = {}
    stack = [(data, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            problems[path or "body"] = [f"nested deeper than {MAX_DEPTH} levels"]
            continue
        if isinstance(value, dict):
            for key, item in value.items():
                reason = bad_text(key)
                where = f"{path}.{key}" if path else str(key)
                if reason:
                    problems[where] = [f"field name {reason}"]
                stack.append((item, where, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{path}.{i}" if path else str(i), depth + 1)
                         for i, item in enumerate(value))
        elif isinstance(value, str):
            reason = bad_text(value)
            if reason:
                problems[path or "body"] = [reason]
        elif isinstance(value, float) and not math.isfinite(value):
            # Python's json reads NaN, Infinity and 1e999; JSON (and PostgreSQL's jsonb) has none.
            problems[path or "body"] = ["not a finite number"]
    return problems


def bad_text(text):
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains an unpaired UTF-16 surrogate"
    return None


def _query_args(schema):
    args = {}
    for key in request.args:
        values = request.args.getlist(key)
        for value in values:
            reason = bad_text(value)
            if reason:
                raise ApiError(400, "invalid", "invalid query", errors={key: [reason]})
        field = schema.fields.get(key)
        from marshmallow import fields as f
        args[key] = values if isinstance(field, f.List) else values[-1]
    return args


def _load(schema, data, where):
    try:
        return schema.load(data)
    except ValidationError as err:
        raise ApiError(400, "invalid", f"invalid {where}", errors=err.messages)
