"""review_items: wafer maps and photos from past runs that a person may label (the review
queue); annotations: each label given, with who and when (never overwritten)

A run stores its least certain items (``REVIEW_PER_RUN``): the map's die codes or the photo as
the model saw it, what the model said, how unsure it was (``uncertainty``, the queue's order)
and a few numbers for the queue's diversity step (``features``). One item per content
(``module``, ``sha256``), however often it is uploaded; ``run_id`` names the run it first came
from (no foreign key: a pruned run leaves its labelled items). Unlabelled items older than
``REVIEW_KEEP_DAYS`` or beyond the newest ``REVIEW_KEEP_ITEMS`` are pruned; labelled ones stay.
Re-annotating adds a row; ``settles`` marks an engineer's decision between annotators who
disagree.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-12
"""
from alembic import op
import sqlalchemy as sa

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "review_items",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("module", sa.String(32), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("run_id", sa.Integer),
        sa.Column("position", sa.Integer),
        sa.Column("name", sa.String(256)),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("cols", sa.Integer, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("release", sa.String(12)),
        sa.Column("model_version", sa.String(128)),
        sa.Column("predicted", sa.String(64)),
        sa.Column("score", sa.Float),
        sa.Column("threshold", sa.Float),
        sa.Column("details", sa.Text),
        sa.Column("uncertainty", sa.Float, nullable=False),
        sa.Column("features", sa.LargeBinary),
        sa.Column("upload_label", sa.String(64)),
    )
    op.create_index("uq_review_items_content", "review_items", ["module", "sha256"],
                    unique=True)
    op.create_index("ix_review_items_queue", "review_items", ["module", "uncertainty"])
    op.create_index("ix_review_items_created", "review_items", ["created"])
    op.create_table(
        "annotations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("item_id", sa.Integer, sa.ForeignKey("review_items.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user", sa.String(128), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("regions", sa.Text),
        sa.Column("mask", sa.LargeBinary),
        sa.Column("settles", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("source", sa.String(32), nullable=False, server_default="page"),
        sa.Column("recorded_by", sa.String(128)),
    )
    op.create_index("ix_annotations_item_id", "annotations", ["item_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_annotations_item_id", table_name="annotations")
    op.drop_table("annotations")
    op.drop_index("ix_review_items_created", table_name="review_items")
    op.drop_index("ix_review_items_queue", table_name="review_items")
    op.drop_index("uq_review_items_content", table_name="review_items")
    op.drop_table("review_items")
