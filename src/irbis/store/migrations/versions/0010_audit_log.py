"""audit log: who changed or took what, when, before and after

One append-only table for labels, identifications and splits, merges and
unmerges, registry changes, user changes, downloads of originals and exports
(:class:`irbis.store.schema.AuditEntry`). ``irbis audit PROJECT`` reads it;
``irbis individuals unmerge`` undoes a merge from its recorded before-state.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at_utc", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("target", sa.String(length=400), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at_utc"])
    op.create_index("ix_audit_log_action", "audit_log", ["action", "at_utc"])
    op.create_index("ix_audit_log_target", "audit_log", ["target"])
    op.create_index("ix_audit_log_actor", "audit_log", ["actor", "at_utc"])


def downgrade() -> None:
    for name in ("ix_audit_log_actor", "ix_audit_log_target", "ix_audit_log_action"):
        op.drop_index(name, table_name="audit_log")
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_table("audit_log")
