"""review latency indexes: the grid's order and per-media label probes

The sequence grid pages through sequences in ``(start_utc, id)`` order; with
``ix_media_groups_kind_start`` a page is an index walk that stops after the
page instead of sorting every sequence. ``ix_observations_media_current``
answers "does this media file have a current (human) label of species X"
from the index alone, which is what the reviewed/species filters ask per
sequence.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 09:00:00
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_media_groups_kind_start",
        "media_groups",
        ["kind", "start_utc", "id"],
        unique=False,
    )
    op.create_index(
        "ix_observations_media_current",
        "observations",
        ["media_id", "retracted_utc", "source", "species"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_observations_media_current", table_name="observations")
    op.drop_index("ix_media_groups_kind_start", table_name="media_groups")
