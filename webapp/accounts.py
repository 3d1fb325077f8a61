"""Accounts: users and their roles, API tokens, sign-in, the admin page and the command line.

Passwords are hashed with ``werkzeug.security`` (scrypt). An API token is
``secrets.token_urlsafe(32)``: shown once, stored as its sha256 (a high-entropy secret needs no
slow hash), revocable, with an optional expiry and a role no higher than its owner's (and
never higher than the owner's role at the time of use). Sessions are Flask-Login's; login
attempts are rate-limited per client address (Flask-Limiter: in memory, or the storage named
by ``FABLENS_RATELIMIT_STORAGE_URL``, e.g. ``redis://...``) and each one, success or failure,
is a row in ``logins``. Which endpoint needs which role is ``webapp/access.py``.

Command line (``flask --app webapp ...``): ``users create NAME --role R`` (password from
``FABLENS_PASSWORD``, else a prompt), ``users list``, ``users disable NAME``, ``tokens create
NAME [--role R] [--expires DAYS]`` (prints the token alone), ``tokens list``, ``tokens revoke
ID``. :func:`first_admin` makes the first ``admin`` with a one-time password when there are no
users (gunicorn's start hook calls it).
"""
from __future__ import annotations

import hashlib
import logging
import os
import secrets
from datetime import timedelta

import click
from flask import (Blueprint, Flask, abort, current_app, flash, redirect, render_template,
                   request, url_for)
from flask.cli import AppGroup
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager, UserMixin, login_user, logout_user
from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from webapp import db
from webapp.access import RANK, ROLES, Principal, current_principal

logger = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)
login_manager = LoginManager()
limiter = Limiter(key_func=get_remote_address)

MIN_PASSWORD = 8
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@")
# checked when the name is unknown, so a wrong name costs as long as a wrong password
_DUMMY_HASH = generate_password_hash(secrets.token_urlsafe(16))


class AccountError(ValueError):
    """A user or token request that cannot be done; the message says why."""


class User(UserMixin):
    """A signed-in user as Flask-Login sees it."""

    def __init__(self, row) -> None:
        self.id, self.name, self.role = row["id"], row["name"], row["role"]




def _engine(engine: Engine | None) -> Engine:
    return engine if engine is not None else db.engine()


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_role(role: str) -> str:
    if role not in RANK:
        raise AccountError(f"the role must be one of {', '.join(ROLES)}, got '{role}'")
    return role


def check_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 64 or not set(name) <= NAME_CHARS:
        raise AccountError("a user name is 1 to 64 letters, digits or . _ - @")
    return name


def check_password(password: str) -> str:
    if len(password or "") < MIN_PASSWORD:
        raise AccountError(f"a password needs at least {MIN_PASSWORD} characters")
    return password


# -- users --------------------------------------------------------------------------------------
def create_user(name: str, role: str, password: str, engine: Engine | None = None) -> int:
    """Add a user; their id. AccountError for a taken name, a bad role or a short password."""
    name, role, password = check_name(name), check_role(role), check_password(password)
    try:
        with _engine(engine).begin() as conn:
            result = conn.execute(insert(db.users).values(
                name=name, role=role, active=True, created=db.utcnow(),
                password_hash=generate_password_hash(password)))
            return int(result.inserted_primary_key[0])
    except IntegrityError:
        raise AccountError(f"there is already a user called '{name}'") from None


def get_user(name: str, engine: Engine | None = None) -> dict | None:
    with _engine(engine).connect() as conn:
        row = conn.execute(select(db.users).where(db.users.c.name == name)).mappings().first()
        return dict(row) if row else None


def list_users(engine: Engine | None = None) -> list[dict]:
    """Every user (never the password hash) with how many live tokens they hold, by name."""
    t, u = db.tokens.c, db.users.c
    now = db.utcnow()
    with _engine(engine).connect() as conn:
        users = [dict(r) for r in conn.execute(select(u.id, u.name, u.role, u.active, u.created)
                                               .order_by(u.name)).mappings()]
        tokens = conn.execute(select(t.user_id, t.expires).where(t.revoked.is_(None))).all()
    live: dict[int, int] = {}
    for user_id, expires in tokens:
        if expires is None or db.aware(expires) > now:
            live[user_id] = live.get(user_id, 0) + 1
    for user in users:
        user["tokens"] = live.get(user["id"], 0)
    return users


def count_users(engine: Engine | None = None) -> int:
    with _engine(engine).connect() as conn:
        return int(conn.execute(select(func.count()).select_from(db.users)).scalar())


def _active_admins(conn) -> int:
    u = db.users.c
    return int(conn.execute(select(func.count()).select_from(db.users)
                            .where(u.role == "admin", u.active.is_(True))).scalar())


def update_user(user_id: int, role: str | None = None, active: bool | None = None,
                engine: Engine | None = None) -> dict:
    """Set a user's role or active state; refuses to leave no active admin."""
    values = {}
    if role is not None:
        values["role"] = check_role(role)
    if active is not None:
        values["active"] = bool(active)
    with _engine(engine).begin() as conn:
        row = conn.execute(select(db.users).where(db.users.c.id == user_id)).mappings().first()
        if row is None:
            raise LookupError(f"no user {user_id}")
        if values:
            conn.execute(update(db.users).where(db.users.c.id == user_id).values(**values))
            if row["role"] == "admin" and row["active"] and _active_admins(conn) == 0:
                raise AccountError("that would leave no active admin; make someone else admin "
                                   "first")
        return dict(conn.execute(select(db.users).where(db.users.c.id == user_id))
                    .mappings().first())


def authenticate(name: str, password: str, engine: Engine | None = None) -> dict | None:
    """The active user with this name and password, else None (same cost either way)."""
    user = get_user((name or "").strip(), engine)
    hashed = user["password_hash"] if user and user["password_hash"] else _DUMMY_HASH
    ok = check_password_hash(hashed, password or "")
    return user if ok and user is not None and user["active"] else None


def record_login(name: str, user_id: int | None, success: bool,
                 remote_addr: str | None) -> None:
    with db.engine().begin() as conn:
        conn.execute(insert(db.logins).values(created=db.utcnow(), name=(name or "")[:64],
                                              user_id=user_id, success=success,
                                              remote_addr=(remote_addr or "")[:64] or None))


def recent_logins(limit: int = 20, engine: Engine | None = None) -> list[dict]:
    with _engine(engine).connect() as conn:
        return [dict(r) for r in conn.execute(select(db.logins).order_by(db.logins.c.id.desc())
                                              .limit(limit)).mappings()]


def first_admin(engine: Engine) -> str | None:
    """When there are no users at all, create ``admin`` with a random one-time password and
    return it (to print once); otherwise None."""
    if count_users(engine):
        return None
    password = secrets.token_urlsafe(12)
    try:
        create_user("admin", "admin", password, engine)
    except AccountError:  # another process made it a moment ago
        return None
    return password


# -- tokens -------------------------------------------------------------------------------------
def create_token(name: str, role: str | None = None, expires_days: float | None = None,
                 engine: Engine | None = None) -> tuple[int, str]:
    """A new token for user ``name`` (its id and the token itself, shown once). Its role is
    the owner's unless a lower one is asked for; a higher one is refused."""
    user = get_user(name, engine)
    if user is None:
        raise AccountError(f"there is no user called '{name}'")
    if not user["active"]:
        raise AccountError(f"user '{name}' is disabled")
    role = check_role(role or user["role"])
    if RANK[role] > RANK[user["role"]]:
        raise AccountError(f"a token's role can be at most its owner's ({user['role']}), "
                           f"not {role}")
    if expires_days is not None and expires_days <= 0:
        raise AccountError("--expires is a number of days above 0")
    token = secrets.token_urlsafe(32)
    expires = db.utcnow() + timedelta(days=expires_days) if expires_days is not None else None
    with _engine(engine).begin() as conn:
        result = conn.execute(insert(db.tokens).values(
            user_id=user["id"], token_sha256=hash_token(token), role=role, created=db.utcnow(),
            expires=expires))
        return int(result.inserted_primary_key[0]), token


def list_tokens(engine: Engine | None = None) -> list[dict]:
    """Every token (never the token itself) with its owner's name and its state."""
    t, u = db.tokens.c, db.users.c
    now = db.utcnow()
    with _engine(engine).connect() as conn:
        rows = [dict(r) for r in conn.execute(
            select(t.id, t.role, t.created, t.expires, t.revoked, t.last_used,
                   u.name.label("owner"))
            .join(db.users, u.id == t.user_id).order_by(t.id.desc())).mappings()]
    for row in rows:
        row["state"] = ("revoked" if row["revoked"] is not None else
                        "expired" if row["expires"] is not None and db.aware(row["expires"]) <= now
                        else "live")
    return rows


def revoke_token(token_id: int, engine: Engine | None = None) -> bool:
    """Revoke a token (the first revocation time is kept); False when there is no such token."""
    t = db.tokens.c
    with _engine(engine).begin() as conn:
        if conn.execute(select(t.id).where(t.id == token_id)).first() is None:
            return False
        conn.execute(update(db.tokens).where(t.id == token_id, t.revoked.is_(None))
                     .values(revoked=db.utcnow()))
        return True


def principal_for_token(token: str) -> Principal | None:
    """The principal a bearer token stands for, or None when it is unknown, revoked, expired
    or its owner is disabled. Its role is never above the owner's current role."""
    if not token:
        return None
    t, u = db.tokens.c, db.users.c
    with db.engine().begin() as conn:
        row = conn.execute(select(t.id, t.role, t.expires, t.revoked, u.id.label("user_id"),
                                  u.name, u.role.label("owner_role"), u.active)
                           .join(db.users, u.id == t.user_id)
                           .where(t.token_sha256 == hash_token(token))).mappings().first()
        if row is None or row["revoked"] is not None or not row["active"]:
            return None
        if row["expires"] is not None and db.aware(row["expires"]) <= db.utcnow():
            return None
        conn.execute(update(db.tokens).where(t.id == row["id"]).values(last_used=db.utcnow()))
    role = min(row["role"], row["owner_role"], key=RANK.__getitem__)
    return Principal(row["name"], role, "token", user_id=row["user_id"], token_id=row["id"])


# -- pages --------------------------------------------------------------------------------------
@login_manager.user_loader
def _load_user(user_id: str):
    try:
        with db.engine().connect() as conn:
            row = conn.execute(select(db.users).where(db.users.c.id == int(user_id))) \
                .mappings().first()
    except ValueError:
        return None
    return User(row) if row is not None and row["active"] else None


def _safe_next(target: str | None) -> str:
    """Only a path on this site (never another host) to go back to after signing in."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("pages.index")


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], methods=["POST"])
def login():
    """Sign in with a name and password; every attempt is recorded."""
    next_url = request.values.get("next")
    error = None
    if request.method == "POST":
        name = (request.form.get("name") or "").strip()
        user = authenticate(name, request.form.get("password") or "")
        record_login(name, user["id"] if user else None, user is not None, request.remote_addr)
        if user is not None:
            login_user(User(user))
            logger.info("login: %s from %s", name, request.remote_addr)
            return redirect(_safe_next(next_url))
        logger.warning("failed login for %r from %s", name[:64], request.remote_addr)
        error = "That name and password do not match an active account."
    return render_template("login.html", error=error, next_url=next_url,
                           name=request.form.get("name", ""))


@bp.errorhandler(429)
def too_many_attempts(error):
    """Too many sign-in attempts from this address: the sign-in form again, saying so."""
    return render_template("login.html", error="Too many sign-in attempts from this address; "
                           "wait a minute and try again.", next_url=request.values.get("next"),
                           name=request.form.get("name", "")), 429


@bp.post("/logout")
def logout():
    logout_user()
    return redirect(url_for("auth.login"))


@bp.get("/admin/users")
def users(new_token: dict | None = None):
    """Users (add, set a role, disable or enable), their tokens (make, revoke), recent
    logins. ``new_token`` (just made) is shown once, on this answer only."""
    return render_template("admin_users.html", users=list_users(), tokens=list_tokens(),
                           logins=recent_logins(), roles=ROLES,
                           me=current_principal(), new_token=new_token)


def _admin_error(message: str):
    flash(message, "error")
    return redirect(url_for("auth.users"))


@bp.post("/admin/users")
def add_user():
    try:
        create_user(request.form.get("name", ""), request.form.get("role", ""),
                    request.form.get("password", ""))
    except AccountError as exc:
        return _admin_error(str(exc))
    flash(f"User {request.form.get('name', '').strip()} added.", "notice")
    return redirect(url_for("auth.users"))


@bp.post("/admin/users/<id:user_id>", endpoint="update_user")
def update_user_page(user_id: int):
    role = request.form.get("role") or None
    active = {"1": True, "0": False}.get(request.form.get("active", ""))
    try:
        row = update_user(user_id, role=role, active=active)
    except LookupError:
        abort(404, description=f"no user {user_id}")
    except AccountError as exc:
        return _admin_error(str(exc))
    flash(f"{row['name']}: {row['role']}, {'active' if row['active'] else 'disabled'}.",
          "notice")
    return redirect(url_for("auth.users"))


@bp.post("/admin/tokens", endpoint="create_token")
def create_token_page():
    """Make a token for a user; the page shows it once (it is never stored, only its hash,
    and never put in a redirect or the session)."""
    expires = (request.form.get("expires_days") or "").strip()
    try:
        days = float(expires) if expires else None
    except ValueError:
        return _admin_error(f"'{expires}' is not a number of days")
    try:
        token_id, token = create_token(request.form.get("name", "").strip(),
                                       request.form.get("role") or None, days)
    except AccountError as exc:
        return _admin_error(str(exc))
    return users(new_token={"id": token_id, "token": token,
                            "name": request.form.get("name", "").strip()})


@bp.post("/admin/tokens/<id:token_id>/revoke", endpoint="revoke_token")
def revoke_token_page(token_id: int):
    if not revoke_token(token_id):
        abort(404, description=f"no token {token_id}")
    flash(f"Token {token_id} revoked.", "notice")
    return redirect(url_for("auth.users") + "#tokens")


# -- command line -------------------------------------------------------------------------------
users_cli = AppGroup("users", help="Users and their roles.")
tokens_cli = AppGroup("tokens", help="API tokens (Authorization: Bearer <token>).")


def _fail(exc: Exception):
    raise click.ClickException(str(exc))


@users_cli.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True)
def users_create(name: str, role: str) -> None:
    """Add a user; the password comes from FABLENS_PASSWORD, else a prompt."""
    password = os.environ.get("FABLENS_PASSWORD") or click.prompt(
        "Password", hide_input=True, confirmation_prompt=True)
    try:
        create_user(name, role, password)
    except AccountError as exc:
        _fail(exc)
    click.echo(f"user {name} created ({role})")


@users_cli.command("list")
def users_list() -> None:
    """Every user: name, role, state, live tokens."""
    for user in list_users():
        click.echo(f"{user['name']}\t{user['role']}\t"
                   f"{'active' if user['active'] else 'disabled'}\t{user['tokens']} tokens")


@users_cli.command("disable")
@click.argument("name")
def users_disable(name: str) -> None:
    """Disable a user: their sessions and tokens stop working at once."""
    user = get_user(name)
    if user is None:
        _fail(AccountError(f"there is no user called '{name}'"))
    try:
        update_user(user["id"], active=False)
    except AccountError as exc:
        _fail(exc)
    click.echo(f"user {name} disabled")


@tokens_cli.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), default=None,
              help="at most the owner's role (default: the owner's)")
@click.option("--expires", type=float, default=None, help="days until it expires")
def tokens_create(name: str, role: str | None, expires: float | None) -> None:
    """Print a new API token for user NAME, alone on stdout (it is not shown again)."""
    try:
        _, token = create_token(name, role, expires)
    except AccountError as exc:
        _fail(exc)
    click.echo(token)


@tokens_cli.command("list")
def tokens_list() -> None:
    """Every token: id, owner, role, state, expiry (never the token itself)."""
    for t in list_tokens():
        expires = t["expires"].strftime("%Y-%m-%d %H:%M") if t["expires"] else "no expiry"
        click.echo(f"{t['id']}\t{t['owner']}\t{t['role']}\t{t['state']}\t{expires}")


@tokens_cli.command("revoke")
@click.argument("token_id", type=int)
def tokens_revoke(token_id: int) -> None:
    """Revoke token TOKEN_ID (see tokens list)."""
    if not revoke_token(token_id):
        _fail(AccountError(f"there is no token {token_id}"))
    click.echo(f"token {token_id} revoked")


def init_app(app: Flask) -> None:
    app.config.setdefault("LOGIN_RATE_LIMIT", "10/minute")
    login_manager.init_app(app)
    limiter.init_app(app)
    app.register_blueprint(bp)
    app.cli.add_command(users_cli)
    app.cli.add_command(tokens_cli)
