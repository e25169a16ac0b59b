"""sorted before ingest counts as reviewed: recompute every sequence summary

A species or individual a person gave by sorting photos into folders
(camtrapR's ``station/species`` layout) or by XMP tags now makes a sequence
*reviewed* (:data:`irbis.store.sequence_summary.SORTED_BY_PEOPLE`). The
summaries are derived, so every sequence is queued for recomputation; no
table changes.

Revision ID: 0008
Revises: 0007
Create Date: 2027-01-10 09:00:00
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_REQUEUE = (
    "INSERT INTO sequence_dirty (sequence_id) SELECT id FROM media_groups WHERE kind = 'sequence'"
)


def upgrade() -> None:
    op.execute(_REQUEUE)


def downgrade() -> None:
    op.execute(_REQUEUE)
