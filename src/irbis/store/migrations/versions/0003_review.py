"""review: event-level observations with provenance, individuals, annotations,
match decisions, users

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 07:31:40.117756
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "individuals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("species", sa.String(length=200), nullable=False),
        sa.Column("sex", sa.String(length=20), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("merged_into_id", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_utc", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["merged_into_id"],
            ["individuals.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("organisation", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("precise_locations", sa.Boolean(), nullable=False),
        sa.Column("token_hash", sa.String(length=128), nullable=True),
        sa.Column("created_utc", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "annotations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("media_id", sa.Integer(), nullable=False),
        sa.Column("frame", sa.Integer(), nullable=False),
        sa.Column("x", sa.Float(), nullable=False),
        sa.Column("y", sa.Float(), nullable=False),
        sa.Column("width", sa.Float(), nullable=False),
        sa.Column("height", sa.Float(), nullable=False),
        sa.Column("side", sa.String(length=10), nullable=False),
        sa.Column("quality", sa.Float(), nullable=True),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("by", sa.String(length=200), nullable=False),
        sa.Column("individual_id", sa.Integer(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_utc", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["individual_id"], ["individuals.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["media_id"], ["media.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("annotations", schema=None) as batch_op:
        batch_op.create_index("ix_annotations_individual", ["individual_id"], unique=False)
        batch_op.create_index("ix_annotations_media", ["media_id"], unique=False)

    op.create_table(
        "match_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("annotation_id", sa.Integer(), nullable=False),
        sa.Column("individual_id", sa.Integer(), nullable=True),
        sa.Column("decision", sa.String(length=20), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("probability", sa.Float(), nullable=True),
        sa.Column("matches", sa.JSON(), nullable=False),
        sa.Column("side", sa.String(length=10), nullable=True),
        sa.Column("by", sa.String(length=200), nullable=False),
        sa.Column("created_utc", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["annotation_id"], ["annotations.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["individual_id"], ["individuals.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("match_decisions", schema=None) as batch_op:
        batch_op.create_index("ix_match_decisions_annotation", ["annotation_id"], unique=False)

    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("extra", sa.JSON(), server_default=sa.text("'{}'"), nullable=False)
        )

    with op.batch_alter_table("media", schema=None) as batch_op:
        batch_op.add_column(sa.Column("uid", sa.String(length=200), nullable=True))
        batch_op.add_column(
            sa.Column("review_version", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("extra", sa.JSON(), server_default=sa.text("'{}'"), nullable=False)
        )

    with op.batch_alter_table("observations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("level", sa.String(length=10), server_default="media", nullable=False)
        )
        batch_op.add_column(sa.Column("deployment_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("uid", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("event_uid", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("event_start_utc", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("event_end_utc", sa.DateTime(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "observation_type", sa.String(length=20), server_default="animal", nullable=False
            )
        )
        batch_op.add_column(sa.Column("individual_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("side", sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column("life_stage", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("sex", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("behavior", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("bbox_x", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("bbox_y", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("bbox_w", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("bbox_h", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("probability", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("comments", sa.Text(), server_default="", nullable=False))
        batch_op.add_column(
            sa.Column("extra", sa.JSON(), server_default=sa.text("'{}'"), nullable=False)
        )
        batch_op.add_column(sa.Column("retracted_utc", sa.DateTime(), nullable=True))
        batch_op.add_column(
            sa.Column("retracted_by", sa.String(length=200), server_default="", nullable=False)
        )
        batch_op.alter_column("media_id", existing_type=sa.INTEGER(), nullable=True)
        batch_op.create_index("ix_observations_individual", ["individual_id"], unique=False)
        batch_op.create_foreign_key(
            "fk_observations_individual_id",
            "individuals",
            ["individual_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_foreign_key(
            "fk_observations_deployment_id",
            "deployments",
            ["deployment_id"],
            ["id"],
            ondelete="CASCADE",
        )


def downgrade() -> None:
    with op.batch_alter_table("observations", schema=None) as batch_op:
        batch_op.drop_constraint("fk_observations_deployment_id", type_="foreignkey")
        batch_op.drop_constraint("fk_observations_individual_id", type_="foreignkey")
        batch_op.drop_index("ix_observations_individual")
        batch_op.alter_column("media_id", existing_type=sa.INTEGER(), nullable=False)
        batch_op.drop_column("retracted_by")
        batch_op.drop_column("retracted_utc")
        batch_op.drop_column("extra")
        batch_op.drop_column("comments")
        batch_op.drop_column("probability")
        batch_op.drop_column("bbox_h")
        batch_op.drop_column("bbox_w")
        batch_op.drop_column("bbox_y")
        batch_op.drop_column("bbox_x")
        batch_op.drop_column("behavior")
        batch_op.drop_column("sex")
        batch_op.drop_column("life_stage")
        batch_op.drop_column("side")
        batch_op.drop_column("individual_id")
        batch_op.drop_column("observation_type")
        batch_op.drop_column("event_end_utc")
        batch_op.drop_column("event_start_utc")
        batch_op.drop_column("event_uid")
        batch_op.drop_column("uid")
        batch_op.drop_column("deployment_id")
        batch_op.drop_column("level")

    with op.batch_alter_table("media", schema=None) as batch_op:
        batch_op.drop_column("extra")
        batch_op.drop_column("review_version")
        batch_op.drop_column("uid")

    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.drop_column("extra")

    with op.batch_alter_table("match_decisions", schema=None) as batch_op:
        batch_op.drop_index("ix_match_decisions_annotation")

    op.drop_table("match_decisions")
    with op.batch_alter_table("annotations", schema=None) as batch_op:
        batch_op.drop_index("ix_annotations_media")
        batch_op.drop_index("ix_annotations_individual")

    op.drop_table("annotations")
    op.drop_table("users")
    op.drop_table("individuals")
