"""jobs: training and batch scoring as jobs (state, progress, log, who, result); uploads: data
sets sent in parts for them

A job is written when it is submitted (``queued``) and moves to ``running``, then ``done``,
``failed`` (with the reason) or ``cancelled``; ``worker`` (``host:pid``) and ``heartbeat``
say who runs it and that it still lives, so a job whose worker died is closed as failed
rather than left ``running``. An upload's bytes live in the jobs folder; this table says
whose they are, how many were promised and how many arrived.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-11
"""
from alembic import op
import sqlalchemy as sa

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("module", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("user", sa.String(128)),
        sa.Column("data", sa.String(256)),
        sa.Column("params", sa.Text),
        sa.Column("progress_done", sa.BigInteger),
        sa.Column("progress_total", sa.BigInteger),
        sa.Column("progress_unit", sa.String(32)),
        sa.Column("stage", sa.String(300)),
        sa.Column("log", sa.Text),
        sa.Column("result", sa.Text),
        sa.Column("error", sa.String(500)),
        sa.Column("started", sa.DateTime(timezone=True)),
        sa.Column("finished", sa.DateTime(timezone=True)),
        sa.Column("heartbeat", sa.DateTime(timezone=True)),
        sa.Column("worker", sa.String(128)),
        sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="SET NULL")),
    )
    op.create_index("ix_jobs_state", "jobs", ["state", "id"])
    op.create_index("ix_jobs_run_id", "jobs", ["run_id"])
    op.create_table(
        "uploads",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user", sa.String(128)),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("received", sa.BigInteger, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_table("uploads")
    op.drop_index("ix_jobs_run_id", table_name="jobs")
    op.drop_index("ix_jobs_state", table_name="jobs")
    op.drop_table("jobs")
