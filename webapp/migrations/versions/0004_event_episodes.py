"""events as episodes: one row per machine per unbroken stretch of flagged cycles

``cycle`` and ``timestamp`` become ``first_cycle`` and ``first_timestamp``; new columns hold
the last cycle and time, the cycle of the peak score, the number of cycles, when a later run
extended the stretch (``updated``) and ``start_key`` (the first time text, else the first
cycle), which with module, machine, model and version names an episode: a unique index on
those makes scoring the same history again add nothing.

The rows 0003 stored (one per flagged cycle, repeated by every re-score) are folded into
episodes: a run's rows of one machine and model whose cycles follow one another (1, 2, 3: the
C-MAPSS cycle count, or a dated row's position) are one episode; rows of the detect API (no
run) stay one each; episodes with the same key (the same history scored again) are one. The
row kept is the oldest; it is acknowledged when any row folded into it was (first time kept).
A downgrade keeps the episodes as they are (one row each, the first cycle in ``cycle``).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

CHUNK = 500


def start_key(cycle, timestamp):
    """As ``webapp.events.start_key`` (copied: a migration never changes with the app)."""
    if timestamp is not None:
        return str(timestamp)[:64]
    return None if cycle is None else repr(float(cycle))


def _episodes(rows):
    """The 0003 rows (ordered by id) as lists of rows, one list per episode."""
    groups = {}
    for r in rows:
        if r["run_id"] is None:
            groups[("detect", r["id"])] = [r]
        else:
            key = (r["run_id"], r["module"], r["machine_id"], r["model"], r["model_version"])
            groups.setdefault(key, []).append(r)
    out = []
    for members in groups.values():
        members.sort(key=lambda r: (r["first_cycle"] is None, r["first_cycle"] or 0, r["id"]))
        current = [members[0]]
        for r in members[1:]:
            prev = current[-1]["first_cycle"]
            if r["first_cycle"] is not None and prev is not None and r["first_cycle"] == prev + 1:
                current.append(r)
            else:
                out.append(current)
                current = [r]
        out.append(current)
    return out


def _fold(conn, events) -> None:
    columns = ("id", "created", "module", "machine_id", "first_cycle", "first_timestamp",
               "score", "rul", "model", "model_version", "run_id", "acknowledged",
               "acknowledged_at")
    rows = [dict(r) for r in conn.execute(sa.select(*[events.c[c] for c in columns])
                                          .order_by(events.c.id)).mappings()]
    if not rows:
        return
    by_key = {}
    for episode in _episodes(rows):
        first, last = episode[0], episode[-1]
        peak = max(episode, key=lambda r: r["score"])
        summary = {"members": episode, "n": len(episode), "first": first, "last": last,
                   "peak": peak,
                   "key": (first["module"], first["machine_id"], first["model"],
                           first["model_version"],
                           start_key(first["first_cycle"], first["first_timestamp"]))}
        if summary["key"][-1] is None:  # nothing names it: never folded with another
            summary["key"] = ("row", first["id"])
        by_key.setdefault(summary["key"], []).append(summary)
    updates, doomed = [], []
    for key, same in by_key.items():
        members = [r for s in same for r in s["members"]]
        keep = min(members, key=lambda r: r["id"])
        longest = max(same, key=lambda s: (s["n"], -s["first"]["id"]))
        peak = max((s["peak"] for s in same), key=lambda r: r["score"])
        acked = [r["acknowledged_at"] for r in members if r["acknowledged"]]
        updates.append({
            "b_id": keep["id"], "first_cycle": longest["first"]["first_cycle"],
            "first_timestamp": longest["first"]["first_timestamp"],
            "last_cycle": longest["last"]["first_cycle"],
            "last_timestamp": longest["last"]["first_timestamp"],
            "peak_cycle": peak["first_cycle"], "score": peak["score"],
            "rul": longest["last"]["rul"], "n_cycles": longest["n"],
            "start_key": None if key[0] == "row" else key[-1],
            "acknowledged": bool(acked),
            "acknowledged_at": min((a for a in acked if a is not None), default=None)})
        doomed += [r["id"] for r in members if r["id"] != keep["id"]]
    statement = events.update().where(events.c.id == sa.bindparam("b_id")).values(
        **{k: sa.bindparam(k) for k in updates[0] if k != "b_id"})
    for start in range(0, len(updates), CHUNK):
        conn.execute(statement, updates[start:start + CHUNK])
    for start in range(0, len(doomed), CHUNK):
        conn.execute(events.delete().where(events.c.id.in_(doomed[start:start + CHUNK])))


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.alter_column("cycle", new_column_name="first_cycle")
        batch.alter_column("timestamp", new_column_name="first_timestamp",
                           existing_type=sa.String(64))
        batch.add_column(sa.Column("last_cycle", sa.Float))
        batch.add_column(sa.Column("last_timestamp", sa.String(64)))
        batch.add_column(sa.Column("peak_cycle", sa.Float))
        batch.add_column(sa.Column("n_cycles", sa.Integer, nullable=False,
                                   server_default="1"))
        batch.add_column(sa.Column("start_key", sa.String(64)))
        batch.add_column(sa.Column("updated", sa.DateTime(timezone=True)))
    events = sa.table(
        "events", sa.column("id", sa.Integer), sa.column("created", sa.DateTime(timezone=True)),
        sa.column("module", sa.String), sa.column("machine_id", sa.String),
        sa.column("first_cycle", sa.Float), sa.column("first_timestamp", sa.String),
        sa.column("last_cycle", sa.Float), sa.column("last_timestamp", sa.String),
        sa.column("peak_cycle", sa.Float), sa.column("n_cycles", sa.Integer),
        sa.column("start_key", sa.String), sa.column("score", sa.Float),
        sa.column("rul", sa.Float), sa.column("model", sa.String),
        sa.column("model_version", sa.String), sa.column("run_id", sa.Integer),
        sa.column("acknowledged", sa.Boolean),
        sa.column("acknowledged_at", sa.DateTime(timezone=True)))
    _fold(op.get_bind(), events)
    op.create_index("uq_events_episode", "events",
                    ["module", "machine_id", "model", "model_version", "start_key"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_events_episode", table_name="events")
    with op.batch_alter_table("events") as batch:
        for column in ("updated", "start_key", "n_cycles", "peak_cycle", "last_timestamp",
                       "last_cycle"):
            batch.drop_column(column)
        batch.alter_column("first_timestamp", new_column_name="timestamp",
                           existing_type=sa.String(64))
        batch.alter_column("first_cycle", new_column_name="cycle")
