"""Accounts: sign-in, CSRF, the command line, the first admin, who is recorded, headers."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from tests.conftest import make_batch_frame, sqlite_url, to_csv_bytes
from webapp import accounts, create_app, db
from webapp.db import upgrade


@pytest.fixture
def url(tmp_path):
    url = sqlite_url(tmp_path)
    upgrade(url)
    return url


def make_app(url, **extra):
    return create_app({"TESTING": True, "DATABASE_URL": url, "AUTH": "on", **extra})


def csrf_from(response) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', response.get_data(True)).group(1)


def sign_in(client, name, password):
    token = csrf_from(client.get("/login"))
    return client.post("/login", data={"name": name, "password": password, "csrf_token": token})


def test_sign_in_and_out_records_every_attempt(url):
    app = make_app(url)
    with app.app_context():
        accounts.create_user("ann", "viewer", "correct-horse")
    client = app.test_client()
    assert client.get("/history").headers["Location"] == "/login?next=/history"
    wrong = sign_in(client, "ann", "wrong-password")
    assert wrong.status_code == 200 and "do not match" in wrong.get_data(True)
    unknown = sign_in(client, "nobody", "wrong-password")
    assert unknown.get_data(True).count("do not match") == 1  # the same words either way
    ok = sign_in(client, "ann", "correct-horse")
    assert ok.status_code == 302 and ok.headers["Location"] == "/"
    page = client.get("/history")
    assert page.status_code == 200 and "ann" in page.get_data(True)
    client.post("/logout", data={"csrf_token": csrf_from(page)})
    assert client.get("/history").status_code == 302
    with app.app_context():
        logins = accounts.recent_logins()
    assert [(x["name"], x["success"]) for x in reversed(logins)] == [
        ("ann", False), ("nobody", False), ("ann", True)]


def test_next_never_leaves_the_site(url):
    app = make_app(url)
    with app.app_context():
        accounts.create_user("ann", "viewer", "correct-horse")
    client = app.test_client()
    token = csrf_from(client.get("/login"))
    response = client.post("/login", data={"name": "ann", "password": "correct-horse",
                                            "csrf_token": token, "next": "//evil.example/"})
    assert response.headers["Location"] == "/"


def test_login_attempts_are_rate_limited(url):
    app = make_app(url, LOGIN_RATE_LIMIT="3/minute")
    client = app.test_client()
    token = csrf_from(client.get("/login"))
    answers = [client.post("/login", data={"name": "x", "password": "y", "csrf_token": token})
               for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    refused = answers[-1].get_data(as_text=True)  # the sign-in form again, saying why
    assert "Too many sign-in attempts" in refused and 'name="password"' in refused


def test_a_page_post_without_the_csrf_token_is_refused(url):
    """A state-changing request from a page session needs the token; a bearer token needs none."""
    app = make_app(url)
    with app.app_context():
        accounts.create_user("eng", "engineer", "correct-horse")
        _, token = accounts.create_token("eng")
    client = app.test_client()
    sign_in(client, "eng", "correct-horse")
    page = client.get("/history/events")
    refused = client.post("/history/events/acknowledge", data={"ids": []})
    assert refused.status_code == 400 and "CSRF" in refused.get_data(True)
    refused_api = client.post("/api/v1/events/acknowledge", json={"ids": [1]})
    assert refused_api.status_code == 400
    fine = client.post("/history/events/acknowledge", data={"csrf_token": csrf_from(page)})
    assert fine.status_code == 302
    header = client.post("/api/v1/events/acknowledge", json={"ids": [1]},
                         headers={"X-CSRFToken": csrf_from(page)})
    assert header.status_code == 404  # past the CSRF check: there is no event 1
    bearer = app.test_client().post("/api/v1/events/acknowledge", json={"ids": [1]},
                                    headers={"Authorization": f"Bearer {token}"})
    assert bearer.status_code == 404


def test_security_headers_on_every_response(url):
    app = make_app(url)
    client = app.test_client()
    for path in ("/login", "/health", "/static/css/app.css", "/history", "/api/v1/models",
                 "/no-such-page"):
        response = client.get(path)
        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "script-src 'self';" in csp
        assert "frame-ancestors 'none'" in csp and "unsafe-eval" not in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "same-origin"


def test_session_cookie_flags(url):
    app = make_app(url, PROXY_FIX=True)
    with app.app_context():
        accounts.create_user("ann", "viewer", "correct-horse")
    client = app.test_client()
    token = csrf_from(client.get("/login", base_url="https://fablens.example"))
    response = client.post("/login", base_url="https://fablens.example",
                           headers={"Referer": "https://fablens.example/login"},
                           data={"name": "ann", "password": "correct-horse", "csrf_token": token})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie


def test_templates_have_no_inline_script():
    """script-src 'self': no inline code (JSON data blocks are fine) and no on* handlers."""
    from pathlib import Path

    for template in Path("templates").glob("*.html"):
        text = template.read_text()
        for tag in re.findall(r"<script\b[^>]*>", text):
            assert "src=" in tag or 'type="application/json"' in tag, (template, tag)
        assert not re.search(r"\son[a-z]+\s*=", text), template


def test_history_survives_a_restart_and_records_who(url):
    """Runs and downloads made through one app are listed, with who, by a new app on the
    same SQLite file."""
    app = make_app(url)
    with app.app_context():
        accounts.create_user("vic", "viewer", "correct-horse")
        _, token = accounts.create_token("vic")
    client = app.test_client()
    sign_in(client, "vic", "correct-horse")
    page = client.get("/sensor/")
    response = client.post("/api/v1/sensor/predict", headers={"X-CSRFToken": csrf_from(page)},
                           data={"file": (__import__("io").BytesIO(
                               to_csv_bytes(make_batch_frame(3))), "w.csv")})
    assert response.status_code == 200, response.get_data(True)[:300]
    run_id = response.get_json()["run_id"]
    api = app.test_client().get(f"/runs/{run_id}/results.csv",
                                headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 200

    again = make_app(url)
    with again.app_context():
        runs = db.recent_runs()
    assert [(r["id"], r["user"]) for r in runs] == [(run_id, "vic")]
    assert runs[0]["downloads"][0]["user"].startswith("vic (token ")
    fresh = again.test_client()
    sign_in(fresh, "vic", "correct-horse")
    history = fresh.get("/history").get_data(True)
    assert f'id="run-{run_id}"' in history and "vic (token" in history


def test_acknowledgement_records_who(url):
    app = make_app(url)
    with app.app_context():
        accounts.create_user("eng", "engineer", "correct-horse")
        _, token = accounts.create_token("eng")
        from webapp.events import record_events
        with app.test_request_context():
            record_events("timeseries", [{"machine_id": "m1", "first_cycle": 1.0,
                                          "last_cycle": 2.0, "peak_cycle": 2.0, "n_cycles": 2,
                                          "score": 0.9, "threshold": 0.5, "model": "m",
                                          "model_version": "1"}])
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    event = client.get("/api/v1/events", headers=headers).get_json()["events"][0]
    acked = client.post(f"/api/v1/events/{event['id']}/acknowledge", headers=headers)
    assert acked.get_json()["acknowledged_by"].startswith("eng (token ")
    open_app = create_app({"TESTING": True, "DATABASE_URL": url})
    with open_app.test_request_context(environ_base={"REMOTE_ADDR": "127.0.0.1"}):
        from webapp.access import current_actor
        assert current_actor() == "local"  # open mode on loopback


def test_admin_page_adds_sets_roles_disables_and_revokes(url):
    app = make_app(url)
    with app.app_context():
        accounts.create_user("root", "admin", "correct-horse")
        accounts.create_user("ann", "viewer", "correct-horse")
        token_id, token = accounts.create_token("ann")
    client = app.test_client()
    sign_in(client, "root", "correct-horse")
    page = client.get("/admin/users")
    assert page.status_code == 200 and f'id="token-{token_id}"' in page.get_data(True)
    csrf = csrf_from(page)
    client.post("/admin/users", data={"name": "bob", "role": "engineer",
                                      "password": "long-enough", "csrf_token": csrf})
    with app.app_context():
        bob = accounts.get_user("bob")
        assert bob["role"] == "engineer"
        ann = accounts.get_user("ann")
        client.post(f"/admin/users/{ann['id']}", data={"role": "engineer", "csrf_token": csrf})
        assert accounts.get_user("ann")["role"] == "engineer"
        client.post(f"/admin/tokens/{token_id}/revoke", data={"csrf_token": csrf})
        assert app.test_client().get("/api/v1/events", headers={
            "Authorization": f"Bearer {token}"}).status_code == 401
        client.post(f"/admin/users/{bob['id']}", data={"active": "0", "csrf_token": csrf})
        assert not accounts.get_user("bob")["active"]
        root = accounts.get_user("root")
        last = client.post(f"/admin/users/{root['id']}", data={"role": "viewer",
                                                               "csrf_token": csrf},
                           follow_redirects=True)
        assert "no active admin" in last.get_data(True)
        assert accounts.get_user("root")["role"] == "admin"


def test_admin_page_makes_a_token_shown_once(url):
    import re

    app = make_app(url)
    with app.app_context():
        accounts.create_user("root", "admin", "correct-horse")
        accounts.create_user("ann", "engineer", "correct-horse")
    client = app.test_client()
    sign_in(client, "root", "correct-horse")
    csrf = csrf_from(client.get("/admin/users"))
    made = client.post("/admin/tokens", data={"name": "ann", "role": "viewer",
                                              "expires_days": "30", "csrf_token": csrf})
    html = made.get_data(as_text=True)
    assert made.status_code == 200 and "shown this once" in html
    token = re.search(r'class="token-value" readonly value="([^"]+)"', html).group(1)
    api = app.test_client()
    assert api.get("/api/v1/events", headers={"Authorization": f"Bearer {token}"}
                   ).status_code == 200
    assert token not in client.get("/admin/users").get_data(as_text=True)  # never again
    with app.app_context():
        assert [t["role"] for t in accounts.list_tokens()] == ["viewer"]
    too_high = client.post("/admin/tokens", data={"name": "ann", "role": "admin",
                                                  "csrf_token": csrf}, follow_redirects=True)
    assert "at most its owner" in too_high.get_data(as_text=True)


def test_cli_users_and_tokens(url, monkeypatch):
    app = make_app(url)
    runner = app.test_cli_runner()
    monkeypatch.setenv("FABLENS_PASSWORD", "correct-horse")
    result = runner.invoke(args=["users", "create", "ann", "--role", "engineer"])
    assert result.exit_code == 0, result.output
    monkeypatch.delenv("FABLENS_PASSWORD")
    prompted = runner.invoke(args=["users", "create", "bob", "--role", "viewer"],
                             input="prompted-pw\nprompted-pw\n")
    assert prompted.exit_code == 0, prompted.output
    assert runner.invoke(args=["users", "create", "ann", "--role", "viewer"],
                         env={"FABLENS_PASSWORD": "correct-horse"}).exit_code != 0
    listed = runner.invoke(args=["users", "list"]).output
    assert "ann\tengineer\tactive" in listed and "bob\tviewer\tactive" in listed

    made = runner.invoke(args=["tokens", "create", "ann", "--role", "viewer", "--expires", "30"])
    assert made.exit_code == 0
    token = made.output.strip()
    assert made.output == token + "\n" and len(token) >= 40  # the token alone
    assert runner.invoke(args=["tokens", "create", "bob", "--role", "admin"]).exit_code != 0
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/events", headers=headers).status_code == 200
    assert client.post("/api/v1/events/1/acknowledge", headers=headers).status_code == 403
    with app.app_context():
        stored = db.engine().connect().execute(select(db.tokens.c.token_sha256)).scalars().all()
    assert token not in stored and accounts.hash_token(token) in stored  # stored hashed

    assert runner.invoke(args=["users", "disable", "ann"]).exit_code == 0
    assert client.get("/api/v1/events", headers=headers).status_code == 401
    assert "ann\tengineer\tdisabled" in runner.invoke(args=["users", "list"]).output
    with app.app_context():
        assert accounts.authenticate("ann", "correct-horse") is None
        assert accounts.authenticate("bob", "prompted-pw")["name"] == "bob"


def test_first_start_creates_admin_with_a_one_time_password(url):
    """gunicorn's start hook: no users -> 'admin' with a random password, logged once."""
    from webapp.gunicorn_conf import announce_first_admin

    logged = []

    class Log:
        def warning(self, message, *args):
            logged.append(message % args)

    password = announce_first_admin(url, Log())
    assert password and password in logged[0] and "admin" in logged[0]
    assert announce_first_admin(url, Log()) is None and len(logged) == 1  # only the first time
    app = make_app(url)
    client = app.test_client()
    assert sign_in(client, "admin", password).headers["Location"] == "/"
    assert client.get("/admin/users").status_code == 200


def test_on_starting_migrates_then_creates_the_admin(tmp_path, monkeypatch, capsys):
    from webapp import gunicorn_conf

    url = sqlite_url(tmp_path)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.delenv("FABLENS_AUTH", raising=False)
    # on_starting points Prometheus at a multiprocess directory for the workers it would
    # fork; keep that out of this test process (monkeypatch restores the variable after)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))
    (tmp_path / "metrics").mkdir()
    messages = []

    class Server:
        class log:
            info = staticmethod(lambda m, *a: messages.append(m % a))
            warning = staticmethod(lambda m, *a: messages.append(m % a))

    gunicorn_conf.on_starting(Server)
    assert any("one-time password" in m for m in messages)
    app = make_app(url)
    with app.app_context():
        assert [u["name"] for u in accounts.list_users()] == ["admin"]
