"""Error responses: JSON ``{"error", "message", "problems"}`` under /api, HTML pages elsewhere.

The core's exceptions are translated here, once, for every module (:func:`as_http_error`): a
:class:`SchemaError` (located problems; a :class:`LimitError` is a 413) and an
:class:`UnknownDetectorError` are 400s, whichever view or parser raised them; a
:class:`ModelUnavailableError` (a model whose bundle did not load) is a 503 naming the model
and why, since the request was right and the other models still serve. Unexpected
exceptions are logged with their traceback and answered with a plain 500 that shows no
internals.
"""
from __future__ import annotations

import logging

from flask import Flask, current_app, jsonify, render_template, request
from werkzeug.exceptions import (HTTPException, InternalServerError, RequestEntityTooLarge,
                                 ServiceUnavailable)

from pipelines.core.budget import BudgetExceeded
from pipelines.core.detectors import UnknownDetectorError
from pipelines.core.predictor import ModelUnavailableError
from pipelines.core.problems import LimitError, SchemaError

logger = logging.getLogger(__name__)
MAX_PROBLEMS = 50  # problems listed in one error response; the message counts the rest


class InputError(HTTPException):
    """A request whose input is wrong; carries the problems (file, row, column) found."""

    code = 400

    def __init__(self, message: str, problems: list[dict] | None = None, code: int | None = None):
        super().__init__(message)
        self.problems = problems or []
        if code is not None:
            self.code = code


def schema_error(exc: SchemaError) -> InputError:
    """A short 400 (413 for a limit) carrying the located problems, at most ``MAX_PROBLEMS``."""
    problems = [p.to_dict() for p in exc.problems]
    message = problems[0]["message"] if problems else "invalid input"
    first = exc.problems[0].text() if exc.problems else message
    headline = first if len(first) <= 240 else first[:237] + "..."
    if len(problems) > 1:
        headline += f" (and {len(problems) - 1} more)"
    if problems and not ({"row", "column", "path"} & set(problems[0])):
        problems = problems[1:]  # the headline says it; listing it again shows it twice
    return InputError(headline, problems[:MAX_PROBLEMS], code=413 if isinstance(exc, LimitError)
                      else None)


def as_http_error(exc: Exception) -> HTTPException | None:
    """The HTTP error a user gets for ``exc``: itself when it is one, the 400/413 for a core
    input exception, the 503 for a model that did not load or work past its time budget,
    None for an unexpected one (a 500)."""
    if isinstance(exc, HTTPException):
        return exc
    if isinstance(exc, SchemaError):
        return schema_error(exc)
    if isinstance(exc, UnknownDetectorError):  # a KeyError: its message without repr quotes
        return InputError(exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc))
    if isinstance(exc, ModelUnavailableError):
        return ServiceUnavailable(str(exc))
    if isinstance(exc, BudgetExceeded):
        return ServiceUnavailable(f"the request ran past its time budget of {exc.seconds:g} s "
                                  f"and was stopped; send a smaller file, or score it as a job")
    return None


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json" \
        or request.headers.get("X-Requested-With") == "fetch"


def _payload(error: HTTPException) -> dict:
    message = error.description or error.name
    if isinstance(error, RequestEntityTooLarge):
        limit = current_app.config["MAX_CONTENT_LENGTH"] / (1024 * 1024)
        message = f"the upload is larger than the {limit:g} MB limit; split the file and try again"
    return {"error": error.name, "message": message,
            "problems": getattr(error, "problems", [])}


def handle_http_error(error: HTTPException):
    """Answer an HTTP error as JSON for API/fetch callers, as an HTML page otherwise."""
    payload = _payload(error)
    # what the error says of itself beyond its text (Retry-After of a busy 503, Allow of a 405)
    headers = {k: v for k, v in error.get_headers() if k in ("Retry-After", "Allow")}
    if _wants_json():
        return jsonify(payload), error.code, headers
    return render_template("error.html", code=error.code, **payload), error.code, headers


def handle_unexpected(error: Exception):
    """Log the traceback; answer a generic 500 with no internals."""
    logger.exception("unhandled error on %s %s", request.method, request.path)
    return handle_http_error(InternalServerError(
        "something went wrong on our side; the error was logged. Your data was not changed."))


def init_app(app: Flask) -> None:
    """Register the handlers."""
    app.register_error_handler(HTTPException, handle_http_error)
    for core in (SchemaError, UnknownDetectorError, ModelUnavailableError, BudgetExceeded):
        app.register_error_handler(core, lambda exc: handle_http_error(as_http_error(exc)))
    app.register_error_handler(Exception, handle_unexpected)
