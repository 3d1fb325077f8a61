"""runs: recorded when they start (``running``) and closed when they end; which worker serves
each (``worker``: ``host:pid``) and the HTTP status a failed one answered (``http_status``);
indexes for History's pages and filters and for retention

A run is now written before its work begins, so a worker killed mid-run leaves a ``running``
row that the next start (or the worker's exit) marks failed; ``worker`` says which process
to ask about. A failed run answered with a 4xx was refused (bad input, too large) and is kept
apart in History and pruned sooner; ``http_status`` is filled in here from the ``HTTP nnn:``
its error text already starts with. ``runs(status, id)`` finds the running and the refused
runs, ``runs(created)`` the runs retention prunes by age (``events(created)`` exists since
0003), and ``run_id`` in ``events`` and ``shadow_scores`` (``run_downloads`` has one since
0002) lets a run be deleted without PostgreSQL reading those tables whole for its foreign
keys (9,000 runs took two minutes beside 100,000 events without them).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-10
"""
import re

from alembic import op
import sqlalchemy as sa

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

CODE = re.compile(r"HTTP (\d{3}):")


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("worker", sa.String(128)))
        batch.add_column(sa.Column("http_status", sa.Integer))
    op.create_index("ix_runs_status", "runs", ["status", "id"])
    op.create_index("ix_runs_created", "runs", ["created"])
    for table in ("events", "shadow_scores"):
        op.create_index(f"ix_{table}_run_id", table, ["run_id"])
    conn = op.get_bind()
    failed = conn.execute(sa.text("SELECT id, error FROM runs WHERE status = 'failed' "
                                  "AND error LIKE 'HTTP %'")).all()
    by_code: dict[int, list[int]] = {}
    for run_id, error in failed:
        found = CODE.match(error or "")
        if found:
            by_code.setdefault(int(found.group(1)), []).append(run_id)
    for code, ids in by_code.items():
        for start in range(0, len(ids), 500):
            conn.execute(sa.text("UPDATE runs SET http_status = :code WHERE id IN :ids")
                         .bindparams(sa.bindparam("ids", expanding=True)),
                         {"code": code, "ids": ids[start:start + 500]})


def downgrade() -> None:
    for table in ("events", "shadow_scores"):
        op.drop_index(f"ix_{table}_run_id", table_name=table)
    op.drop_index("ix_runs_created", table_name="runs")
    op.drop_index("ix_runs_status", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("http_status")
        batch.drop_column("worker")
