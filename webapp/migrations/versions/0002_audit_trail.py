"""audit trail: what each run used (threshold, input hash, edits), failed runs, stored results

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("status", sa.String(16), nullable=False, server_default="ok"))
        batch.add_column(sa.Column("error", sa.String(500)))
        batch.add_column(sa.Column("default_threshold", sa.Float))
        batch.add_column(sa.Column("input_sha256", sa.String(64)))
        batch.add_column(sa.Column("edited_cells", sa.Integer))
        batch.add_column(sa.Column("removed_rows", sa.Integer))
        batch.add_column(sa.Column("warnings", sa.Text))
    op.create_table(
        "run_results",
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("score_column", sa.String(64), nullable=False),
        sa.Column("csv_gz", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "run_downloads",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("flagged", sa.Integer, nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("flagged_only", sa.Boolean, nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_table("run_downloads")
    op.drop_table("run_results")
    with op.batch_alter_table("runs") as batch:
        for column in ("warnings", "removed_rows", "edited_cells", "input_sha256",
                       "default_threshold", "error", "status"):
            batch.drop_column(column)
