"""events: one row per flagged window (time-series early warnings), acknowledged or not

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("module", sa.String(32), nullable=False),
        sa.Column("machine_id", sa.String(128), nullable=False),
        sa.Column("cycle", sa.Float),
        sa.Column("timestamp", sa.String(64)),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("rul", sa.Float),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("model_version", sa.String(128)),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="SET NULL")),
        sa.Column("acknowledged", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_events_machine_created", "events", ["machine_id", "created"])
    op.create_index("ix_events_created", "events", ["created"])


def downgrade() -> None:
    op.drop_index("ix_events_created", table_name="events")
    op.drop_index("ix_events_machine_created", table_name="events")
    op.drop_table("events")
