"""reviewed boxes: the boxes people draw, move and delete, and "no animal here"

A person's box never overwrites the machine's (``detections`` keeps those):
each change is a new row with who and when; moving or deleting a box retracts
the old row (``retracted_utc``/``retracted_by``) so the history stays. A row
with category ``blank`` and no coordinates says "no animal in this frame"; a
row with category ``animal`` and no coordinates says "an animal is here" (the
one-key answer when spot-checking frames set aside as blank). These rows are
the training data of ``irbis models train detector``.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 05:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reviewed_boxes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("media_id", sa.Integer(), nullable=False),
        sa.Column("frame", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("category", sa.String(length=10), nullable=False),
        sa.Column("x", sa.Float(), nullable=True),
        sa.Column("y", sa.Float(), nullable=True),
        sa.Column("width", sa.Float(), nullable=True),
        sa.Column("height", sa.Float(), nullable=True),
        sa.Column("detection_id", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=40), nullable=False, server_default="human"),
        sa.Column("created_by", sa.String(length=200), nullable=False, server_default=""),
        sa.Column("created_utc", sa.DateTime(), nullable=False),
        sa.Column("retracted_utc", sa.DateTime(), nullable=True),
        sa.Column("retracted_by", sa.String(length=200), nullable=False, server_default=""),
        sa.ForeignKeyConstraint(["media_id"], ["media.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["detection_id"], ["detections.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_reviewed_boxes_media", "reviewed_boxes", ["media_id", "frame"])


def downgrade() -> None:
    op.drop_index("ix_reviewed_boxes_media", table_name="reviewed_boxes")
    op.drop_table("reviewed_boxes")
