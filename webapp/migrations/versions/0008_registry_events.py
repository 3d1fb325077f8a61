"""registry_events: every change to a module's registry (live switch, threshold, shadow
candidate attached or detached) with who, when and why; shadow_scores: a candidate's scores
of a live run beside the live ones; runs.drift: each run's drift against the training data

``live_versions`` (0007) is folded into ``registry_events`` as its ``live`` rows, so the
audit log has one source: the newest ``live`` row of a module is its live version, the newest
``shadow``/``detach`` row says whether a candidate is attached.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    events = op.create_table(
        "registry_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("module", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("version", sa.String(12)),
        sa.Column("base_version", sa.String(12)),
        sa.Column("model", sa.String(64)),
        sa.Column("value", sa.Float),
        sa.Column("previous", sa.Float),
        sa.Column("user", sa.String(128)),
        sa.Column("reason", sa.String(500)),
    )
    op.create_index("ix_registry_events_module", "registry_events", ["module", "kind", "id"])
    conn = op.get_bind()
    old = conn.execute(sa.text("SELECT module, version, set_at, set_by, reason "
                               "FROM live_versions ORDER BY id")).all()
    if old:
        op.bulk_insert(events, [{"created": r.set_at, "module": r.module, "kind": "live",
                                 "version": r.version, "user": r.set_by, "reason": r.reason}
                                for r in old])
    op.drop_index("ix_live_versions_module", table_name="live_versions")
    op.drop_table("live_versions")
    op.create_table(
        "shadow_scores",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("module", sa.String(32), nullable=False),
        sa.Column("version", sa.String(12), nullable=False),
        sa.Column("model", sa.String(64)),
        sa.Column("threshold", sa.Float),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.String(500)),
        sa.Column("n_items", sa.Integer),
        sa.Column("n_flagged", sa.Integer),
        sa.Column("n_agree", sa.Integer),
        sa.Column("labelled", sa.Text),
        sa.Column("lag_seconds", sa.Float),
        sa.Column("csv_gz", sa.LargeBinary),
    )
    op.create_index("ix_shadow_scores_module", "shadow_scores", ["module", "version", "id"])
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("drift", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("drift")
    op.drop_index("ix_shadow_scores_module", table_name="shadow_scores")
    op.drop_table("shadow_scores")
    live = op.create_table(
        "live_versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("module", sa.String(32), nullable=False),
        sa.Column("version", sa.String(12), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("set_by", sa.String(128)),
        sa.Column("reason", sa.String(500)),
    )
    op.create_index("ix_live_versions_module", "live_versions", ["module", "id"])
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT module, version, created, \"user\" AS user_name, reason FROM "
                                "registry_events WHERE kind = 'live' ORDER BY id")).all()
    if rows:
        op.bulk_insert(live, [{"module": r.module, "version": r.version, "set_at": r.created,
                               "set_by": r.user_name, "reason": r.reason} for r in rows])
    op.drop_index("ix_registry_events_module", table_name="registry_events")
    op.drop_table("registry_events")
