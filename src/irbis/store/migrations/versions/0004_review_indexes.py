"""review indexes: observations by species and by source (the web app's grid filters)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 08:00:00
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_observations_species", "observations", ["species"], unique=False)
    op.create_index("ix_observations_source", "observations", ["source"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_observations_source", table_name="observations")
    op.drop_index("ix_observations_species", table_name="observations")
