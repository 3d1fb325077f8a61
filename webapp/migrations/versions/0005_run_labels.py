"""runs: how many items the upload's own labels mark faulty (NULL: no labels)

The Models page's recalibration check compares the flag rate of recent runs with the
threshold's false-alarm rate; runs whose upload labels faulty items (failing wafers, maps with
a defect pattern, photos in a defect folder) hold real faults, so they are left out. Runs
recorded before this revision carry no labels (NULL).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("labelled_faulty", sa.Integer))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("labelled_faulty")
