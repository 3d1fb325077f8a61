"""The OpenAPI 3.1 description of the JSON API, built from the URL map and the request models.

One source: the paths come from the Flask URL map (every rule under ``/api/``, plus any other
view that declares itself, such as ``/health``), and what each operation takes and answers is
declared next to its view with :func:`documented`, naming the same pydantic models that
validate the request (``validate_envelope``). Request bodies are those models'
``model_json_schema``; multipart uploads are described by a model of their form fields
(``file`` a binary string); query options by a model whose fields become parameters. Every
error answers :class:`ErrorBody`, the ``{"error", "message", "problems"}`` envelope of
``webapp.errors`` and ``webapp.access``.

A rule under ``/api/`` that no view declared still appears (summary from its docstring), so a
new endpoint cannot be left out; ``tests/webapp/test_openapi.py`` also fails for a POST that
names no request body.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any, Callable, Literal

from flask import Flask, current_app
from pydantic import BaseModel, ConfigDict, Field

from webapp.params import MAX_ID

OPENAPI_VERSION = "3.1.0"
REF = "#/components/schemas/{model}"
# errors every API operation can answer: bad input, no credential, not allowed
COMMON_ERRORS = (400, 401, 403)
UPLOAD_ERRORS = (413, 415)  # too large (bytes, rows, maps), or a kind of file not accepted
STATUS_TEXT = {200: "OK", 400: "The input is wrong: the message says what to fix, the problems "
               "where (file, row, column, or JSON path)",
               401: "No credential, or a wrong, expired or revoked one",
               403: "The credential's role does not allow this",
               404: "Nothing found at this address",
               409: "Not now: the registry's state does not allow it (the message says which "
               "version is in the way)", 413: "Too large: too many bytes, rows, "
               "maps, images or windows (checked before anything is parsed)",
               415: "A kind of file that is not accepted",
               503: "Busy or not ready: try again shortly"}


class ErrorProblem(BaseModel):
    """One located problem: where (a file, row and column, or a JSON path) and what."""

    model_config = ConfigDict(extra="allow")
    message: str
    file: str | None = None
    row: int | None = None
    column: str | int | None = None
    path: str | None = None


class ErrorBody(BaseModel):
    """Every error the API answers (400, 401, 403, 404, 413, 415, 503)."""

    model_config = ConfigDict(extra="forbid")
    error: str = Field(description="the HTTP status name, e.g. 'Bad Request'")
    message: str = Field(description="what is wrong and what to do, one short sentence")
    problems: list[ErrorProblem] = Field(description="where each problem is; may be empty")


class PredictQuery(BaseModel):
    """The query options every ``POST /api/v1/<module>/predict`` reads (the prediction service
    answers CSV for ``format=csv``; the module's parser reads ``model`` and ``threshold`` when
    the body does not give them)."""

    format: Literal["json", "csv"] | None = Field(None, description="csv: the results CSV "
                                                  "(every row) instead of JSON")
    model: str | None = Field(None, description="a model name; the module's default if absent")
    threshold: str | None = Field(None, description="a number: the level items are flagged at")


PREDICT_ERRORS = (*COMMON_ERRORS, *UPLOAD_ERRORS, 503)


@dataclass(frozen=True)
class Operation:
    """What one view takes and answers, for the document (see :func:`documented`)."""

    summary: str | None = None
    body: type[BaseModel] | None = None  # the JSON body's model (the validating one)
    form: type[BaseModel] | None = None  # multipart/form-data fields ("file": bytes)
    query: type[BaseModel] | None = None  # query-string options, one parameter per field
    response: type[BaseModel] | None = None  # the 200 JSON body, when modelled
    csv: bool = False  # ?format=csv answers text/csv instead
    html: bool = False  # answers an HTML page
    errors: tuple[int, ...] = COMMON_ERRORS
    tags: tuple[str, ...] = ()
    public: bool = False  # needs no credential


def documented(**fields: Any) -> Callable:
    """Declare a view's request and responses for the OpenAPI document, next to the view:
    ``@documented(body=AcknowledgeBody, errors=(400, 401, 403, 404))``."""
    operation = Operation(**fields)

    def mark(view: Callable) -> Callable:
        view.openapi = operation
        return view
    return mark


_CONVERTER = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")
_TYPES = {"int": {"type": "integer", "minimum": 0}, "float": {"type": "number"},
          "id": {"type": "integer", "minimum": 1, "maximum": MAX_ID},  # webapp.params.IdConverter
          "path": {"type": "string"}, "string": {"type": "string"},
          "default": {"type": "string"}, "uuid": {"type": "string", "format": "uuid"}}


def _openapi_path(rule: str) -> tuple[str, list[dict]]:
    params = []
    for converter, name in _CONVERTER.findall(rule):
        params.append({"name": name, "in": "path", "required": True,
                       "schema": dict(_TYPES.get(converter or "default", {"type": "string"}))})
    return _CONVERTER.sub(r"{\2}", rule), params


class _Schemas:
    """The components' schemas: each model once, under its own name; $defs lifted out."""

    def __init__(self):
        self.schemas: dict[str, dict] = {}

    def ref(self, model: type[BaseModel]) -> dict:
        name = model.__name__
        if name not in self.schemas:
            schema = model.model_json_schema(ref_template=REF)
            for sub, definition in schema.pop("$defs", {}).items():
                self.schemas.setdefault(sub, definition)
            self.schemas[name] = schema
        return {"$ref": REF.format(model=name)}

    def inline(self, model: type[BaseModel]) -> dict:
        self.ref(model)
        return copy.deepcopy(self.schemas[model.__name__])


def _summary(view: Callable, operation: Operation) -> tuple[str, str]:
    doc = " ".join((view.__doc__ or "").split())
    first = doc.split(". ")[0].rstrip(".") if doc else view.__name__.replace("_", " ")
    return operation.summary or first, doc


def _responses(operation: Operation, schemas: _Schemas) -> dict:
    if operation.html:
        ok = {"text/html": {"schema": {"type": "string"}}}
    else:
        ok = {"application/json": {"schema": schemas.ref(operation.response)
                                   if operation.response else {"type": "object"}}}
        if operation.csv:
            ok["text/csv"] = {"schema": {"type": "string"}}
    out = {"200": {"description": STATUS_TEXT[200], "content": ok}}
    error = {"application/json": {"schema": schemas.ref(ErrorBody)}}
    for code in sorted(set(operation.errors) - ({401, 403} if operation.public else set())):
        out[str(code)] = {"description": STATUS_TEXT[code], "content": error}
    return out


def _parameters(operation: Operation, schemas: _Schemas) -> list[dict]:
    if operation.query is None:
        return []
    schema = schemas.inline(operation.query)
    required = set(schema.get("required", []))
    return [{"name": name, "in": "query", "required": name in required,
             "description": prop.pop("description", ""), "schema": _not_null(prop)}
            for name, prop in schema.get("properties", {}).items()]


def _not_null(schema: dict) -> dict:
    """A query option's schema without pydantic's ``null`` branch: absent is how a query
    string leaves an option out (``required: false``)."""
    schema = {k: v for k, v in schema.items() if k not in ("default", "title")}
    options = [s for s in schema.pop("anyOf", []) if s.get("type") != "null"]
    if len(options) == 1:
        schema |= options[0]
    elif options:
        schema["anyOf"] = options
    return schema


def _request_body(operation: Operation, schemas: _Schemas) -> dict | None:
    content = {}
    if operation.body is not None:
        content["application/json"] = {"schema": schemas.ref(operation.body)}
    if operation.form is not None:
        content["multipart/form-data"] = {"schema": schemas.ref(operation.form)}
    return {"required": True, "content": content} if content else None


def document(app: Flask | None = None) -> dict:
    """The OpenAPI 3.1 document of ``app`` (the current app by default)."""
    from webapp import __version__

    app = app or current_app
    schemas = _Schemas()
    schemas.ref(ErrorBody)
    paths: dict[str, dict] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        view = app.view_functions[rule.endpoint]
        operation = getattr(view, "openapi", None)
        if operation is None and not rule.rule.startswith("/api/"):
            continue
        operation = operation or Operation()
        path, params = _openapi_path(rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            summary, description = _summary(view, operation)
            op = {"operationId": f"{rule.endpoint}.{method.lower()}", "summary": summary,
                  "description": description,
                  "tags": list(operation.tags or [rule.endpoint.split(".")[0]]),
                  "parameters": params + _parameters(operation, schemas),
                  "responses": _responses(operation, schemas)}
            body = _request_body(operation, schemas)
            if body:
                op["requestBody"] = body
            if operation.public:
                op["security"] = []
            paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "FabLens API", "version": __version__,
                 "description": "Find faults in manufacturing data. Every error answers "
                                "{error, message, problems}; send an API token as "
                                "'Authorization: Bearer <token>'."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {"schemas": dict(sorted(schemas.schemas.items())),
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                           "session": {"type": "apiKey", "in": "cookie",
                                                       "name": "session"}}},
        "security": [{"bearer": []}, {"session": []}],
    }


def operations(spec: dict) -> list[dict]:
    """The document's operations in path order, flattened for the docs page."""
    out = []
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            body = op.get("requestBody", {}).get("content", {})
            out.append({"path": path, "method": method.upper(), **op,
                        "body": {kind: _name(c["schema"]) for kind, c in body.items()},
                        "answers": [(code, r["description"],
                                     {kind: _name(c["schema"]) for kind, c in
                                      r.get("content", {}).items()})
                                    for code, r in op["responses"].items()]})
    return out


def _name(schema: dict) -> str | None:
    ref = schema.get("$ref", "")
    return ref.rsplit("/", 1)[-1] if ref else None
