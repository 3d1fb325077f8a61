"""Error responses: JSON ``{"error", "message", "problems"}`` under /api, HTML pages elsewhere.

Unexpected exceptions are logged with their traceback and answered with a plain 500 that
shows no internals.
"""
from __future__ import annotations

import logging

from flask import Flask, current_app, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError, RequestEntityTooLarge

logger = logging.getLogger(__name__)


class InputError(HTTPException):
    """A request whose input is wrong; carries the problems (file, row, column) found."""

    code = 400

    def __init__(self, message: str, problems: list[dict] | None = None, code: int | None = None):
        super().__init__(message)
        self.problems = problems or []
        if code is not None:
            self.code = code


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
    if _wants_json():
        return jsonify(payload), error.code
    return render_template("error.html", code=error.code, **payload), error.code


def handle_unexpected(error: Exception):
    """Log the traceback; answer a generic 500 with no internals."""
    logger.exception("unhandled error on %s %s", request.method, request.path)
    return handle_http_error(InternalServerError(
        "something went wrong on our side; the error was logged. Your data was not changed."))


def init_app(app: Flask) -> None:
    """Register the handlers."""
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(Exception, handle_unexpected)
