"""detections: per-media detector results, boxes, per-sequence verdicts

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 05:48:00.579807
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "media_detections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("media_id", sa.Integer(), nullable=False),
        sa.Column("detector", sa.String(length=200), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("model_version", sa.String(length=100), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("verdict", sa.String(length=10), nullable=False),
        sa.Column("max_score", sa.Float(), nullable=False),
        sa.Column("n_boxes", sa.Integer(), nullable=False),
        sa.Column("n_frames", sa.Integer(), nullable=False),
        sa.Column("best_frame", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("burst", sa.String(length=40), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("created_utc", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["media_id"], ["media.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("media_id", "detector", name="uq_media_detection"),
    )
    op.create_table(
        "sequence_verdicts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sequence_id", sa.Integer(), nullable=False),
        sa.Column("detector", sa.String(length=200), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("model_version", sa.String(length=100), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("verdict", sa.String(length=10), nullable=False),
        sa.Column("best_media_id", sa.Integer(), nullable=True),
        sa.Column("best_frame", sa.Integer(), nullable=True),
        sa.Column("best_score", sa.Float(), nullable=False),
        sa.Column("n_media", sa.Integer(), nullable=False),
        sa.Column("n_blank", sa.Integer(), nullable=False),
        sa.Column("n_animal", sa.Integer(), nullable=False),
        sa.Column("n_person", sa.Integer(), nullable=False),
        sa.Column("n_vehicle", sa.Integer(), nullable=False),
        sa.Column("created_utc", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["best_media_id"], ["media.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["sequence_id"], ["media_groups.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sequence_id", "detector", name="uq_sequence_verdict"),
    )
    op.create_table(
        "detections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("result_id", sa.Integer(), nullable=False),
        sa.Column("media_id", sa.Integer(), nullable=False),
        sa.Column("frame", sa.Integer(), nullable=False),
        sa.Column("time_s", sa.Float(), nullable=True),
        sa.Column("category", sa.String(length=10), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("x", sa.Float(), nullable=False),
        sa.Column("y", sa.Float(), nullable=False),
        sa.Column("width", sa.Float(), nullable=False),
        sa.Column("height", sa.Float(), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(["media_id"], ["media.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["result_id"], ["media_detections.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("detections", schema=None) as batch_op:
        batch_op.create_index("ix_detections_media", ["media_id"], unique=False)
        batch_op.create_index("ix_detections_result", ["result_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("detections", schema=None) as batch_op:
        batch_op.drop_index("ix_detections_result")
        batch_op.drop_index("ix_detections_media")

    op.drop_table("detections")
    op.drop_table("sequence_verdicts")
    op.drop_table("media_detections")
