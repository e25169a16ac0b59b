"""field records, sign transects and genetic individuals (issue 20 items 1, 2)

Point observations made in the field rather than by a camera: scat samples
collected for DNA, snares and other threats, and signs (scrapes, tracks,
scats, claw marks, sprays) on sign transects. Genotypes a laboratory told
apart stand as animals of their own until a person links one to an
individual of the photo catalogue; links are never deleted, only retracted.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "transects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=200), nullable=False),
        sa.Column("walked_on", sa.Date(), nullable=True),
        sa.Column("observers", sa.Text(), nullable=False),
        sa.Column("organisation", sa.String(length=200), nullable=False),
        sa.Column("length_m", sa.Float(), nullable=True),
        sa.Column("line", sa.JSON(), nullable=False),
        sa.Column("crs", sa.String(length=100), nullable=True),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=400), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_utc", sa.DateTime(), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.Column("updated_utc", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    op.create_table(
        "genotypes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=200), nullable=False),
        sa.Column("species", sa.String(length=200), nullable=False),
        sa.Column("sex", sa.String(length=20), nullable=False),
        sa.Column("lab", sa.String(length=200), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_utc", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    op.create_table(
        "genotype_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("genotype_id", sa.Integer(), nullable=False),
        sa.Column("individual_id", sa.Integer(), nullable=False),
        sa.Column("linked_by", sa.String(length=200), nullable=False),
        sa.Column("linked_utc", sa.DateTime(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("retracted_utc", sa.DateTime(), nullable=True),
        sa.Column("retracted_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["genotype_id"], ["genotypes.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["individual_id"], ["individuals.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_genotype_links_genotype", "genotype_links", ["genotype_id"])
    op.create_index("ix_genotype_links_individual", "genotype_links", ["individual_id"])
    op.create_table(
        "field_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("observed_local", sa.DateTime(), nullable=False),
        sa.Column("observed_utc", sa.DateTime(), nullable=False),
        sa.Column("utc_offset_min", sa.Integer(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("x", sa.Float(), nullable=True),
        sa.Column("y", sa.Float(), nullable=True),
        sa.Column("crs", sa.String(length=100), nullable=True),
        sa.Column("elevation", sa.Float(), nullable=True),
        sa.Column("sensitive", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("observer", sa.String(length=200), nullable=False),
        sa.Column("organisation", sa.String(length=200), nullable=False),
        sa.Column("species", sa.String(length=200), nullable=True),
        sa.Column("count", sa.Integer(), nullable=True),
        sa.Column("transect_id", sa.Integer(), nullable=True),
        sa.Column("sample_id", sa.String(length=200), nullable=True),
        sa.Column("lab", sa.String(length=200), nullable=False),
        sa.Column("genotype_id", sa.Integer(), nullable=True),
        sa.Column("sex", sa.String(length=20), nullable=True),
        sa.Column("threat_type", sa.String(length=100), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=True),
        sa.Column("target_species", sa.String(length=200), nullable=True),
        sa.Column("action_taken", sa.Text(), nullable=False),
        sa.Column("sign_type", sa.String(length=20), nullable=True),
        sa.Column("sign_age", sa.String(length=10), nullable=True),
        sa.Column("media_ids", sa.JSON(), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=400), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_utc", sa.DateTime(), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.Column("updated_utc", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["transect_id"], ["transects.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["genotype_id"], ["genotypes.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("uid"),
        sa.UniqueConstraint("sample_id"),
    )
    op.create_index("ix_field_records_kind_time", "field_records", ["kind", "observed_utc"])
    op.create_index("ix_field_records_transect", "field_records", ["transect_id"])
    op.create_index("ix_field_records_genotype", "field_records", ["genotype_id"])


def downgrade() -> None:
    for name in (
        "ix_field_records_genotype",
        "ix_field_records_transect",
        "ix_field_records_kind_time",
    ):
        op.drop_index(name, table_name="field_records")
    op.drop_table("field_records")
    op.drop_index("ix_genotype_links_individual", table_name="genotype_links")
    op.drop_index("ix_genotype_links_genotype", table_name="genotype_links")
    op.drop_table("genotype_links")
    op.drop_table("genotypes")
    op.drop_table("transects")
