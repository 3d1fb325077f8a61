"""Who may do what: the one access table, enforced in one ``before_request`` hook.

Roles are ordered ``viewer < engineer < admin``:

- **viewer**: pages, check and predict, download results, read History, events and models;
- **engineer**: also what changes shared state and is not administration (acknowledging
  events, and later changing thresholds, switching live models, annotating);
- **admin**: also users and tokens.

Every endpoint has a rule in :data:`RULES` (``public`` or the lowest role allowed), or belongs
to a blueprint of a registered module, whose endpoints default to ``viewer``
(:data:`MODULE_DEFAULT`; :data:`RULES` may still name one of them). An endpoint with no rule is
refused (403, and ``tests/webapp/test_access.py`` fails), so the table fails closed.

Who is asking (:func:`current_principal`) is, in this order: a bearer token
(``Authorization: Bearer <token>``, an API client: exempt from CSRF), else the Flask-Login
session. A wrong, missing, expired or revoked credential gets 401 JSON under ``/api/`` (and for
fetch and bearer callers), a redirect to the login page for pages; a missing right gets 403.
Neither says more than that. Session requests that change state must carry the CSRF token
(Flask-WTF: the ``csrf_token`` form field, or the ``X-CSRFToken`` header the page scripts send).

``AUTH`` (``FABLENS_AUTH``): ``on`` (the default) or ``open``: no accounts; a request from a
loopback address acts as the local engineer (``local``), any other address is refused, so an
open server must be bound to 127.0.0.1 (render.yaml never sets it). Apps created with
``TESTING`` default to ``open`` unless the test config sets ``AUTH``.

Who did something is :func:`current_actor`, read by ``webapp.db`` when it records a run, a
download or an acknowledgement (never passed in by the views).

Every response also gets the security headers (:func:`security_headers`): a
Content-Security-Policy with no inline script, ``nosniff``, ``Referrer-Policy``, no framing.
``PROXY_FIX`` (``FABLENS_PROXY_FIX=1``, set on Render) trusts one proxy's ``X-Forwarded-*``
headers (werkzeug's ProxyFix) and marks the session cookie Secure.
"""
from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass

from flask import (Flask, abort, current_app, has_request_context, jsonify, redirect,
                   request, url_for)
from werkzeug.http import HTTP_STATUS_CODES

logger = logging.getLogger(__name__)

PUBLIC = "public"
ROLES = ("viewer", "engineer", "admin")
RANK = {role: i for i, role in enumerate(ROLES)}
MODULE_DEFAULT = "viewer"  # every endpoint of a registered module's blueprints

# endpoint -> the lowest role allowed, or PUBLIC. One line per endpoint outside the modules.
RULES: dict[str, str] = {
    "static": PUBLIC,
    "api.health": PUBLIC,
    "api.ready": PUBLIC,
    "auth.login": PUBLIC,
    "auth.logout": PUBLIC,
    "pages.index": "viewer",
    "pages.history": "viewer",
    "pages.models": "viewer",
    "dashboard.api": "viewer",
    "api.models": "viewer",
    "api.openapi": PUBLIC,  # the API description (no data): scripts read it before signing in
    "api.docs": PUBLIC,
    "metrics.metrics": PUBLIC,  # no account: its own token or network rule (webapp/metrics.py)
    "runs.results": "viewer",
    "events.list_events": "viewer",
    "events.page": "viewer",
    "events.acknowledge_api": "engineer",
    "events.acknowledge_many_api": "engineer",
    "events.acknowledge_page": "engineer",
    "events.acknowledge_selected_page": "engineer",
    "versions.list_versions": "viewer",
    "versions.set_live": "engineer",  # switch or roll back the live model version
    "versions.page": "viewer",
    "versions.set_live_page": "engineer",
    "versions.set_threshold": "engineer",  # a model's threshold: a new version
    "versions.set_threshold_page": "engineer",
    "versions.attach_shadow": "engineer",  # shadow candidates: attach, detach, promote
    "versions.attach_shadow_page": "engineer",
    "versions.detach_shadow": "engineer",
    "versions.detach_shadow_page": "engineer",
    "versions.promote_shadow": "engineer",
    "versions.promote_page": "engineer",
    "versions.upload_page": "admin",  # a release archive from outside: admins only
    "versions.audit_api": "viewer",
    "versions.audit_page": "viewer",
    "versions.shadow_results": "viewer",
    "jobs.api_list": "viewer",  # jobs: viewers watch, engineers start, cancel and upload
    "jobs.api_get": "viewer",
    "jobs.results": "viewer",
    "jobs.page": "viewer",
    "jobs.job_page": "viewer",
    "jobs.api_create": "engineer",
    "jobs.api_cancel": "engineer",
    "jobs.upload_create": "engineer",
    "jobs.upload_get": "engineer",
    "jobs.upload_part": "engineer",
    "annotation.page": "viewer",  # the review queue: viewers read, engineers label and import
    "annotation.annotate_page": "viewer",
    "annotation.queue_api": "viewer",
    "annotation.item_api": "viewer",
    "annotation.item_image": "viewer",
    "annotation.export_api": "viewer",
    "annotation.annotate_api": "engineer",
    "annotation.import_api": "engineer",
    "annotation.retrain_api": "engineer",
    "auth.users": "admin",
    "auth.add_user": "admin",
    "auth.update_user": "admin",
    "auth.revoke_token": "admin",
    "auth.create_token": "admin",
}

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOCAL = "local"  # who acts in open mode

CSP = ("default-src 'self'; script-src 'self'; "
       # plotly.js (the time-series charts) writes its styles into <style> elements
       "style-src 'self' 'unsafe-inline'; "
       # thumbnails, heatmaps and photos are shown from data: and blob: URLs
       "img-src 'self' data: blob:; "
       "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: a user by session or by one of their tokens, or the local user."""

    name: str
    role: str
    via: str  # "session", "token" or "local"
    user_id: int | None = None
    token_id: int | None = None

    @property
    def actor(self) -> str:
        """How History, downloads and events name who did it."""
        return f"{self.name} (token {self.token_id})" if self.via == "token" else self.name

    def may(self, role: str) -> bool:
        return role == PUBLIC or RANK[self.role] >= RANK[role]


def module_blueprints(app: Flask) -> set[str]:
    """Names of the blueprints the registered modules bring (their endpoints: MODULE_DEFAULT)."""
    return app.extensions["fablens_access"]["module_blueprints"]


def rule_for(endpoint: str | None, app: Flask | None = None) -> str | None:
    """The rule of ``endpoint``: PUBLIC, a role, or None (no rule: refused)."""
    if endpoint in RULES:
        return RULES[endpoint]
    app = app or current_app
    blueprint = (endpoint or "").rpartition(".")[0]
    if blueprint and blueprint in module_blueprints(app):
        return MODULE_DEFAULT
    return None


def auth_mode(app: Flask | None = None) -> str:
    return (app or current_app).config["AUTH"]


def is_loopback(address: str | None) -> bool:
    try:
        return ipaddress.ip_address((address or "").split("%")[0]).is_loopback
    except ValueError:
        return False


def current_principal() -> Principal | None:
    """Who the current request acts as (None: nobody signed in)."""
    if not has_request_context():
        return None
    # kept on the request (g can outlive a request when an app context is already pushed)
    if not hasattr(request, "fablens_principal"):
        request.fablens_principal = _authenticate()
    return request.fablens_principal


def current_actor() -> str:
    """The name recorded for what the current request does: the user (``name (token 3)`` for
    a token), ``local`` in open mode, ``anonymous`` for a request nobody signed, ``system``
    outside a request (the command line)."""
    if not has_request_context():
        return "system"
    principal = current_principal()
    return principal.actor if principal else "anonymous"


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credential.strip() or ""


def _is_bearer() -> bool:
    return getattr(request, "fablens_bearer", False)


def _authenticate() -> Principal | None:
    from flask_login import current_user

    from webapp import accounts

    if auth_mode() == "open":
        return Principal(LOCAL, "engineer", "local") if is_loopback(request.remote_addr) else None
    token = _bearer()
    if token is not None:
        request.fablens_bearer = True
        return accounts.principal_for_token(token)
    if current_user.is_authenticated:
        return Principal(current_user.name, current_user.role, "session",
                         user_id=current_user.id)
    return None


def _wants_json() -> bool:
    return (request.path.startswith("/api/") or _is_bearer()
            or request.headers.get("X-Requested-With") == "fetch"
            or request.accept_mimetypes.best == "application/json")


def _refuse(code: int, message: str):
    """A 401/403 that says only what is missing: JSON for API, fetch and token callers (the
    error handlers' shape), the error page otherwise."""
    if _wants_json():
        response = jsonify(error=HTTP_STATUS_CODES[code], message=message, problems=[])
        response.status_code = code
        if code == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="FabLens"'
        return response
    abort(code, description=message)


def _unauthenticated():
    if _wants_json():
        return _refuse(401, "sign in, or send a valid API token as "
                            "'Authorization: Bearer <token>'")
    target = request.full_path if request.method == "GET" else None
    return redirect(url_for("auth.login", next=target.rstrip("?") if target else None))


def enforce():
    """The one check every request passes: a rule for the endpoint, a principal with the
    right, then CSRF for a state-changing request that is not a bearer-token API call."""
    endpoint = request.endpoint
    if endpoint is None:  # no route matched: the 404/405 says nothing
        return None
    rule = rule_for(endpoint)
    if rule is None:
        logger.error("no access rule for endpoint %s: refused (add it to webapp/access.py)",
                     endpoint)
        return _refuse(403, "this address has no access rule, so it is closed")
    principal = current_principal()
    if rule != PUBLIC:
        if principal is None:
            if auth_mode() == "open":
                return _refuse(403, "this server runs without accounts (FABLENS_AUTH=open) "
                                    "and answers only its own machine")
            return _unauthenticated()
        if not principal.may(rule):
            return _refuse(403, f"this needs the {rule} role; you act as {principal.role}")
    if request.method not in SAFE_METHODS and current_app.config["WTF_CSRF_ENABLED"] \
            and not _is_bearer():
        if auth_mode() == "open" and request.path.startswith("/api/"):
            # scripts on this machine call the API without a session; browsers say where a
            # request comes from, and another site's page may not post here
            if request.headers.get("Sec-Fetch-Site") not in (None, "same-origin", "none"):
                return _refuse(403, "a request from another site is refused")
        else:
            current_app.extensions["csrf"].protect()
    return None


def security_headers(response):
    """The headers every response carries (set unless a view chose its own)."""
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _configure(app: Flask) -> None:
    config = app.config
    mode = config.get("AUTH") or ("open" if config.get("TESTING") else "on")
    if mode not in ("on", "open"):
        from webapp.config import ConfigError

        raise ConfigError(f"FABLENS_AUTH must be 'on' or 'open', got {mode!r}")
    if mode == "open" and config.get("PROXY_FIX"):
        from webapp.config import ConfigError

        raise ConfigError("FABLENS_AUTH=open answers loopback addresses only; it cannot run "
                          "behind a proxy (FABLENS_PROXY_FIX)")
    config["AUTH"] = mode
    if "WTF_CSRF_ENABLED" not in config:
        config["WTF_CSRF_ENABLED"] = not (config.get("TESTING") and mode == "open")
    config["WTF_CSRF_CHECK_DEFAULT"] = False  # checked in enforce(), where tokens are exempt
    config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # valid as long as the session
    config.setdefault("SESSION_COOKIE_HTTPONLY", True)
    config["SESSION_COOKIE_SAMESITE"] = config.get("SESSION_COOKIE_SAMESITE") or "Lax"
    config["REMEMBER_COOKIE_SAMESITE"] = "Lax"
    if config.get("PROXY_FIX"):
        config["SESSION_COOKIE_SECURE"] = True
        config["REMEMBER_COOKIE_SECURE"] = True
    config.setdefault("RATELIMIT_STORAGE_URI", config.get("RATELIMIT_STORAGE_URL") or "memory://")
    config.setdefault("RATELIMIT_HEADERS_ENABLED", False)


def init_app(app: Flask) -> None:
    """Configure the modes, then register the access hook (before any other), the security
    headers, the accounts (login, admin page, CLI), CSRF and the login rate limit."""
    from flask_wtf.csrf import CSRFProtect

    from webapp import accounts
    from webapp.registry import registered

    _configure(app)
    if app.config.get("PROXY_FIX"):
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)
    app.extensions["fablens_access"] = {
        "module_blueprints": {bp.name for spec in registered() if spec.ready
                              for bp in spec.blueprints}}
    app.before_request(enforce)
    app.after_request(security_headers)
    CSRFProtect(app)
    accounts.init_app(app)
    app.jinja_env.globals.update(current_principal=current_principal, auth_mode=auth_mode,
                                 role_allows=lambda role: bool(
                                     current_principal() and current_principal().may(role)))
