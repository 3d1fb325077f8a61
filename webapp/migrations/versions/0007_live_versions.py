"""live_versions: which model version each module serves, with who set it, when and why;
runs.release: the version that scored the run

The table is append-only: the newest row per module is the live version, and the rows before
it are the history a rollback reads. Runs recorded before this revision carry no release.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "live_versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("module", sa.String(32), nullable=False),
        sa.Column("version", sa.String(12), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("set_by", sa.String(128)),
        sa.Column("reason", sa.String(500)),
    )
    op.create_index("ix_live_versions_module", "live_versions", ["module", "id"])
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("release", sa.String(12)))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("release")
    op.drop_index("ix_live_versions_module", table_name="live_versions")
    op.drop_table("live_versions")
