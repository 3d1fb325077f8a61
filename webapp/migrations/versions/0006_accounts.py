"""accounts: users, API tokens (stored hashed), every login; who made each run, download and
acknowledgement

Runs, downloads and acknowledgements recorded before this revision have no one named (NULL).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08
"""
from alembic import op
import sqlalchemy as sa

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(256)),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "tokens",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires", sa.DateTime(timezone=True)),
        sa.Column("revoked", sa.DateTime(timezone=True)),
        sa.Column("last_used", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "logins",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="SET NULL")),
        sa.Column("success", sa.Boolean, nullable=False),
        sa.Column("remote_addr", sa.String(64)),
    )
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("user", sa.String(128)))
    with op.batch_alter_table("run_downloads") as batch:
        batch.add_column(sa.Column("user", sa.String(128)))
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("acknowledged_by", sa.String(128)))


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_column("acknowledged_by")
    with op.batch_alter_table("run_downloads") as batch:
        batch.drop_column("user")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("user")
    op.drop_table("logins")
    op.drop_table("tokens")
    op.drop_table("users")
