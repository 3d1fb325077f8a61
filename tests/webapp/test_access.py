"""Every route in the URL map against every kind of caller: the access table, enforced.

``EXPECTED`` below is written out by hand, apart from ``webapp/access.py``: a route added to
the app without a rule there (refused: the table fails closed) or without a line here fails
``test_every_route_has_the_expected_rule``, and each route x principal pair is requested for
real and its status checked (``test_route_access``). Module blueprints' endpoints are
``viewer`` (pages, check, predict, samples) unless listed.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import update

from tests.conftest import sqlite_url
from webapp import access, accounts, create_app, db
from webapp.db import upgrade

PUBLIC = "public"
EXPECTED = {
    "static": PUBLIC, "api.health": PUBLIC, "api.ready": PUBLIC,
    "auth.login": PUBLIC, "auth.logout": PUBLIC,
    "pages.index": "viewer", "pages.history": "viewer", "pages.models": "viewer",
    "api.models": "viewer", "api.openapi": PUBLIC, "api.docs": PUBLIC,
    "metrics.metrics": PUBLIC,  # its own token or network rule: tests/webapp/test_metrics.py
    "runs.results": "viewer",
    "dashboard.api": "viewer",
    "events.list_events": "viewer", "events.page": "viewer",
    "events.acknowledge_api": "engineer", "events.acknowledge_many_api": "engineer",
    "events.acknowledge_page": "engineer", "events.acknowledge_selected_page": "engineer",
    "versions.list_versions": "viewer", "versions.set_live": "engineer",
    "versions.page": "viewer", "versions.set_live_page": "engineer",
    "versions.set_threshold": "engineer", "versions.set_threshold_page": "engineer",
    "versions.attach_shadow": "engineer", "versions.attach_shadow_page": "engineer",
    "versions.detach_shadow": "engineer", "versions.detach_shadow_page": "engineer",
    "versions.promote_shadow": "engineer", "versions.promote_page": "engineer",
    "versions.upload_page": "admin", "versions.audit_api": "viewer",
    "versions.audit_page": "viewer", "versions.shadow_results": "viewer",
    # jobs: viewers watch, engineers start, cancel and upload (a viewer cannot start training)
    "jobs.api_list": "viewer", "jobs.api_get": "viewer", "jobs.results": "viewer",
    "jobs.page": "viewer", "jobs.job_page": "viewer", "jobs.api_create": "engineer",
    "jobs.api_cancel": "engineer", "jobs.upload_create": "engineer",
    "jobs.upload_get": "engineer", "jobs.upload_part": "engineer",
    # the review queue: viewers read and export, engineers label, import and retrain
    "annotation.page": "viewer", "annotation.annotate_page": "viewer",
    "annotation.queue_api": "viewer", "annotation.item_api": "viewer",
    "annotation.item_image": "viewer", "annotation.export_api": "viewer",
    "annotation.annotate_api": "engineer", "annotation.import_api": "engineer",
    "annotation.retrain_api": "engineer",
    "auth.users": "admin", "auth.add_user": "admin", "auth.update_user": "admin",
    "auth.revoke_token": "admin", "auth.create_token": "admin",
}
RANK = {"viewer": 0, "engineer": 1, "admin": 2}
# who asks: (how, role it should act as, or None for nobody)
PRINCIPALS = {
    "anonymous": ("none", None),
    "viewer": ("session", "viewer"),
    "engineer": ("session", "engineer"),
    "admin": ("session", "admin"),
    "viewer-token": ("token", "viewer"),
    "engineer-token": ("token", "engineer"),
    "admin-token": ("token", "admin"),
    "revoked-token": ("token", None),
    "expired-token": ("token", None),
}
SAMPLE_VALUES = {"int": "999999", "id": "999999", "path": "css/app.css", "default": "x"}


def _module_blueprints() -> set[str]:
    from webapp.registry import ready_modules

    return {bp.name for spec in ready_modules() for bp in spec.blueprints}


def expected_rule(endpoint: str) -> str | None:
    if endpoint in EXPECTED:
        return EXPECTED[endpoint]
    if endpoint.rpartition(".")[0] in _module_blueprints():
        return "viewer"
    return None


def _url(rule) -> str:
    url = rule.rule
    for converter, name in re.findall(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>", rule.rule):
        value = SAMPLE_VALUES.get(converter or "default", "x")
        url = re.sub(r"<(?:\w+(?:\([^)]*\))?:)?" + name + ">", value, url)
    return url


def _cases():
    app = create_app({"TESTING": True, "DATABASE_URL": "sqlite:///:memory:", "AUTH": "on"})
    out = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            out.append((rule.endpoint, method, _url(rule)))
    return out


CASES = _cases()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One app with accounts on (CSRF off: tested apart), a user per role, a token per role,
    a revoked and an expired token."""
    url = sqlite_url(tmp_path_factory.mktemp("access"))
    upgrade(url)
    app = create_app({"TESTING": True, "DATABASE_URL": url, "AUTH": "on",
                      "WTF_CSRF_ENABLED": False})
    ids, tokens = {}, {}
    with app.app_context():
        for role in RANK:
            ids[role] = accounts.create_user(f"{role}-user", role, "password-" + role)
            tokens[f"{role}-token"] = accounts.create_token(f"{role}-user")[1]
        revoked_id, tokens["revoked-token"] = accounts.create_token("engineer-user")
        accounts.revoke_token(revoked_id)
        expired_id, tokens["expired-token"] = accounts.create_token("admin-user",
                                                                     expires_days=1)
        with db.engine().begin() as conn:
            conn.execute(update(db.tokens).where(db.tokens.c.id == expired_id).values(
                expires=datetime.now(timezone.utc) - timedelta(minutes=1)))
    return app, ids, tokens


def _client(world, principal: str):
    app, ids, tokens = world
    client = app.test_client()
    how, role = PRINCIPALS[principal]
    headers = {}
    if how == "session":
        with client.session_transaction() as session:
            session["_user_id"] = str(ids[role])
            session["_fresh"] = True
    elif how == "token":
        headers["Authorization"] = f"Bearer {tokens[principal]}"
    return client, headers


def test_every_route_has_the_expected_rule():
    """Each endpoint in the URL map has a rule in webapp/access.py, the one written here."""
    app = create_app({"TESTING": True, "DATABASE_URL": "sqlite:///:memory:", "AUTH": "on"})
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    with app.app_context():
        found = {e: access.rule_for(e) for e in endpoints}
    missing = sorted(e for e, rule in found.items() if rule is None)
    assert not missing, f"endpoints without an access rule (add them to webapp/access.py): " \
                        f"{missing}"
    unexpected = sorted(e for e in endpoints if expected_rule(e) is None)
    assert not unexpected, f"endpoints this test does not know: {unexpected}"
    wrong = {e: (found[e], expected_rule(e)) for e in endpoints if found[e] != expected_rule(e)}
    assert not wrong, f"rule in access.py vs expected here: {wrong}"


@pytest.mark.parametrize("principal", list(PRINCIPALS))
@pytest.mark.parametrize("endpoint,method,url", CASES,
                         ids=[f"{m} {u}" for _, m, u in CASES])
def test_route_access(world, endpoint, method, url, principal):
    rule = expected_rule(endpoint)
    assert rule is not None, f"{endpoint} has no expected rule"
    client, headers = _client(world, principal)
    how, role = PRINCIPALS[principal]
    response = client.open(url, method=method, headers=headers)
    status, location = response.status_code, response.headers.get("Location", "")
    to_login = status == 302 and location.startswith("/login")
    if rule == PUBLIC:  # signing in and out answer everyone (logging out redirects to login)
        assert status not in (401, 403) and status < 500, f"{principal} {method} {url}: {status}"
        return
    if role is not None and RANK[role] >= RANK[rule]:
        assert status not in (401, 403) and not to_login and status < 500, \
            f"{principal} {method} {url}: {status} {location} {response.get_data(True)[:200]}"
        return
    if role is None and (how == "token" or url.startswith("/api/")):
        assert status == 401, f"{principal} {method} {url}: {status}"
        body = response.get_json()
        assert set(body) <= {"error", "message", "problems"} and not body["problems"]
    elif role is None:
        assert to_login, f"{principal} {method} {url}: {status} {location}"
        assert "next=" in location or method != "GET"
    else:
        assert status == 403, f"{principal} {method} {url}: {status}"
        if url.startswith("/api/") or how == "token":
            body = response.get_json()
            assert set(body) <= {"error", "message", "problems"} and not body["problems"]


def test_a_route_without_a_rule_is_refused(tmp_path):
    """Fail closed: an endpoint added with no rule answers 403, even to an admin."""
    url = sqlite_url(tmp_path)
    upgrade(url)
    app = create_app({"TESTING": True, "DATABASE_URL": url, "AUTH": "on"})
    app.add_url_rule("/unlisted", "unlisted", lambda: "secret")
    with app.app_context():
        _, token = (accounts.create_user("root", "admin", "password-1"),
                    accounts.create_token("root")[1])
    response = app.test_client().get("/unlisted", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    assert b"secret" not in response.data


def test_open_mode_answers_loopback_only(tmp_path):
    """FABLENS_AUTH=open: the local engineer on 127.0.0.1, 403 from any other address."""
    url = sqlite_url(tmp_path)
    upgrade(url)
    app = create_app({"TESTING": True, "DATABASE_URL": url, "AUTH": "open"})
    client = app.test_client()
    assert client.get("/history").status_code == 200
    assert client.post("/api/v1/events/999999/acknowledge").status_code == 404  # engineer
    assert client.get("/admin/users").status_code == 403  # no admin in open mode
    remote = {"REMOTE_ADDR": "10.1.2.3"}
    assert client.get("/history", environ_base=remote).status_code == 403
    assert client.get("/api/v1/models", environ_base=remote).status_code == 403
    assert client.get("/health", environ_base=remote).status_code == 200


def test_token_role_follows_its_owner(tmp_path):
    """A token never acts above its owner's current role, and a disabled owner's token fails."""
    url = sqlite_url(tmp_path)
    upgrade(url)
    app = create_app({"TESTING": True, "DATABASE_URL": url, "AUTH": "on"})
    client = app.test_client()
    with app.app_context():
        user_id = accounts.create_user("eve", "engineer", "password-1")
        _, token = accounts.create_token("eve")
        with pytest.raises(accounts.AccountError, match="at most its owner"):
            accounts.create_token("eve", role="admin")
        headers = {"Authorization": f"Bearer {token}"}
        assert client.post("/api/v1/events/999999/acknowledge", headers=headers
                           ).status_code == 404
        accounts.create_user("boss", "admin", "password-2")
        accounts.update_user(user_id, role="viewer")
        assert client.post("/api/v1/events/999999/acknowledge", headers=headers
                           ).status_code == 403
        assert client.get("/api/v1/events", headers=headers).status_code == 200
        accounts.update_user(user_id, active=False)
        assert client.get("/api/v1/events", headers=headers).status_code == 401
