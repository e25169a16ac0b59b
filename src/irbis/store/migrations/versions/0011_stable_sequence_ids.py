"""stable sequence ids: retired groups remember their first frame

Regrouping a deployment after an ingest no longer deletes and renumbers its
sequences and events: a group keeps its id while it exists, and a group that
vanishes (merged into another by new frames, or emptied) stays as a retired
row (``kind`` ``old-seq``/``old-event``) whose ``first_media_id`` names its
first frame. Links to an old sequence are redirected to the sequence holding
that frame now, and an id is never given to another sequence.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("media_groups", sa.Column("first_media_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.execute("DELETE FROM media_groups WHERE kind IN ('old-seq', 'old-event')")
    with op.batch_alter_table("media_groups") as batch:
        batch.drop_column("first_media_id")
