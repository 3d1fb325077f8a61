"""Logs as JSON lines on stdout, each with the request id of the request it belongs to.

Every request gets an id: the ``X-Request-ID`` it was sent with when that is a plain token
(letters, digits, ``.``, ``_``, ``-``; at most 64), else a new random one. The id is echoed in
the response's ``X-Request-ID``, put on every log line written while the request runs, and on
the one line logged per request (method, path, endpoint, status, milliseconds, who), so a
user's report ("request 4f3a... failed") finds its lines. Set ``LOG_FORMAT = "text"``
(``FABLENS_LOG_FORMAT=text``) for plain lines when reading the log by eye.
"""
from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from datetime import datetime, timezone

from flask import Flask, g, has_request_context, request

from webapp.access import current_actor  # the platform's one answer to "who"

HEADER = "X-Request-ID"
_VALID_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# the attributes every LogRecord has; anything else on a record was passed as ``extra``
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

logger = logging.getLogger("webapp.requests")
logger.setLevel(logging.INFO)  # the access log: one line per request whatever the root's level


def request_id() -> str | None:
    """The current request's id (None outside a request)."""
    return g.get("request_id") if has_request_context() else None


class RequestIdFilter(logging.Filter):
    """Put the current request's id on every record (``record.request_id``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = request_id()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, request_id, the
    record's ``extra`` fields, and the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(
                   timespec="milliseconds"),
               "level": record.levelname, "logger": record.name,
               "message": record.getMessage(),
               "request_id": getattr(record, "request_id", None)}
        out |= {k: v for k, v in vars(record).items() if k not in _STANDARD and k not in out}
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure(log_format: str = "json") -> None:
    """Log to stdout so a PaaS captures it, as JSON lines (or ``text``), only when nothing
    configured logging already (pytest, an embedding application)."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def _start() -> None:
    sent = request.headers.get(HEADER, "")
    g.request_id = sent if _VALID_ID.fullmatch(sent) else uuid.uuid4().hex
    g.request_started = time.perf_counter()


def _finish(response):
    if "request_id" not in g:  # a request refused before our hook ran
        _start()
    response.headers[HEADER] = g.request_id
    logger.info("%s %s %s", request.method, request.path, response.status_code, extra={
        "method": request.method, "path": request.path, "endpoint": request.endpoint,
        "status": response.status_code, "who": current_actor(),
        "ms": round(1000 * (time.perf_counter() - g.request_started), 1)})
    return response


def init_app(app: Flask) -> None:
    """Give every request an id first (before the access check), echo it, log the request."""
    configure(app.config.get("LOG_FORMAT", "json"))
    app.before_request_funcs.setdefault(None, []).insert(0, _start)
    app.after_request(_finish)
