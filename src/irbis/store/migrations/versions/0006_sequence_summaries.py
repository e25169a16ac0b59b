"""sequence summaries: what the review grid shows of each sequence, precomputed

The grid used to read every media file and observation of a page's sequences
and to test its filters ("labelled X, not reviewed") with per-sequence probes
of the observations; at census scale that cost several times the page's own
work. ``sequence_summaries`` keeps each sequence's current labels and media
versions, ``sequence_labels`` one row per current label (and ``*``) with the
sequence's start, so that a filtered page is one index walk.

Both are derived: triggers on ``observations``, ``media`` and ``media_groups``
queue the affected sequence ids in ``sequence_dirty`` whatever program writes
(ingest, import, the web app, a person with ``sqlite3``), and
``irbis.store.sequence_summary.refresh`` recomputes them. Every existing
sequence is queued here.

Also: a station's sequences in grid order (``ix_media_groups_deployment_kind``
gains ``start_utc, id``) and deployments by station.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 10:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_MEDIA_COLUMNS = "sequence_id, review_version, timestamp_local, timestamp_utc"

_SQLITE_TRIGGERS = [
    # Observations name a media file; its sequence is what changes.
    """CREATE TRIGGER irbis_dirty_obs_ins AFTER INSERT ON observations
    WHEN NEW.media_id IS NOT NULL BEGIN
      INSERT INTO sequence_dirty (sequence_id)
      SELECT sequence_id FROM media WHERE id = NEW.media_id AND sequence_id IS NOT NULL;
    END""",
    """CREATE TRIGGER irbis_dirty_obs_upd AFTER UPDATE ON observations BEGIN
      INSERT INTO sequence_dirty (sequence_id)
      SELECT sequence_id FROM media
      WHERE id IN (NEW.media_id, OLD.media_id) AND sequence_id IS NOT NULL;
    END""",
    """CREATE TRIGGER irbis_dirty_obs_del AFTER DELETE ON observations
    WHEN OLD.media_id IS NOT NULL BEGIN
      INSERT INTO sequence_dirty (sequence_id)
      SELECT sequence_id FROM media WHERE id = OLD.media_id AND sequence_id IS NOT NULL;
    END""",
    """CREATE TRIGGER irbis_dirty_media_ins AFTER INSERT ON media
    WHEN NEW.sequence_id IS NOT NULL BEGIN
      INSERT INTO sequence_dirty (sequence_id) VALUES (NEW.sequence_id);
    END""",
    f"""CREATE TRIGGER irbis_dirty_media_upd AFTER UPDATE OF {_MEDIA_COLUMNS} ON media BEGIN
      INSERT INTO sequence_dirty (sequence_id)
      SELECT s FROM (SELECT NEW.sequence_id AS s UNION SELECT OLD.sequence_id) WHERE s IS NOT NULL;
    END""",
    """CREATE TRIGGER irbis_dirty_media_del AFTER DELETE ON media
    WHEN OLD.sequence_id IS NOT NULL BEGIN
      INSERT INTO sequence_dirty (sequence_id) VALUES (OLD.sequence_id);
    END""",
    """CREATE TRIGGER irbis_dirty_group_ins AFTER INSERT ON media_groups
    WHEN NEW.kind = 'sequence' BEGIN
      INSERT INTO sequence_dirty (sequence_id) VALUES (NEW.id);
    END""",
    """CREATE TRIGGER irbis_dirty_group_upd AFTER UPDATE ON media_groups BEGIN
      INSERT INTO sequence_dirty (sequence_id) VALUES (NEW.id);
    END""",
]
_SQLITE_TRIGGER_NAMES = [t.split()[2] for t in _SQLITE_TRIGGERS]

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION irbis_mark_sequence_dirty() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_TABLE_NAME = 'observations' THEN
    IF TG_OP <> 'DELETE' AND NEW.media_id IS NOT NULL THEN
      INSERT INTO sequence_dirty (sequence_id)
      SELECT sequence_id FROM media WHERE id = NEW.media_id AND sequence_id IS NOT NULL;
    END IF;
    IF TG_OP <> 'INSERT' AND OLD.media_id IS NOT NULL THEN
      INSERT INTO sequence_dirty (sequence_id)
      SELECT sequence_id FROM media WHERE id = OLD.media_id AND sequence_id IS NOT NULL;
    END IF;
  ELSIF TG_TABLE_NAME = 'media' THEN
    IF TG_OP <> 'DELETE' AND NEW.sequence_id IS NOT NULL THEN
      INSERT INTO sequence_dirty (sequence_id) VALUES (NEW.sequence_id);
    END IF;
    IF TG_OP <> 'INSERT' AND OLD.sequence_id IS NOT NULL
       AND (TG_OP = 'DELETE' OR OLD.sequence_id IS DISTINCT FROM NEW.sequence_id) THEN
      INSERT INTO sequence_dirty (sequence_id) VALUES (OLD.sequence_id);
    END IF;
  ELSIF TG_TABLE_NAME = 'media_groups' THEN
    IF NEW.kind = 'sequence' THEN
      INSERT INTO sequence_dirty (sequence_id) VALUES (NEW.id);
    END IF;
  END IF;
  RETURN NULL;
END $$
"""
_PG_TRIGGERS = [
    """CREATE TRIGGER irbis_dirty_obs AFTER INSERT OR UPDATE OR DELETE ON observations
    FOR EACH ROW EXECUTE FUNCTION irbis_mark_sequence_dirty()""",
    f"""CREATE TRIGGER irbis_dirty_media AFTER INSERT OR DELETE OR UPDATE OF {_MEDIA_COLUMNS}
    ON media FOR EACH ROW EXECUTE FUNCTION irbis_mark_sequence_dirty()""",
    """CREATE TRIGGER irbis_dirty_groups AFTER INSERT OR UPDATE ON media_groups
    FOR EACH ROW EXECUTE FUNCTION irbis_mark_sequence_dirty()""",
]
_PG_TRIGGER_TABLES = {
    "irbis_dirty_obs": "observations",
    "irbis_dirty_media": "media",
    "irbis_dirty_groups": "media_groups",
}


def upgrade() -> None:
    op.create_table(
        "sequence_dirty",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sequence_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "sequence_summaries",
        sa.Column("sequence_id", sa.Integer(), nullable=False),
        sa.Column("start_local", sa.DateTime(), nullable=True),
        sa.Column("reviewed", sa.Boolean(), nullable=False),
        sa.Column("labels", sa.Text(), nullable=False),
        sa.Column("media", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["sequence_id"], ["media_groups.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("sequence_id"),
    )
    op.create_table(
        "sequence_labels",
        sa.Column("sequence_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("reviewed", sa.Boolean(), nullable=False),
        sa.Column("start_utc", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["sequence_id"], ["media_groups.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("sequence_id", "label"),
    )
    op.create_index(
        "ix_sequence_labels_label_reviewed",
        "sequence_labels",
        ["label", "reviewed", "start_utc", "sequence_id"],
    )
    op.create_index(
        "ix_sequence_labels_label_start", "sequence_labels", ["label", "start_utc", "sequence_id"]
    )
    op.drop_index("ix_media_groups_deployment_kind", table_name="media_groups")
    op.create_index(
        "ix_media_groups_deployment_kind",
        "media_groups",
        ["deployment_id", "kind", "start_utc", "id"],
    )
    op.create_index("ix_deployments_station", "deployments", ["station_id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        for ddl in _PG_TRIGGERS:
            op.execute(ddl)
    else:
        for ddl in _SQLITE_TRIGGERS:
            op.execute(ddl)
    op.execute(
        "INSERT INTO sequence_dirty (sequence_id) "
        "SELECT id FROM media_groups WHERE kind = 'sequence'"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, table in _PG_TRIGGER_TABLES.items():
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        op.execute("DROP FUNCTION IF EXISTS irbis_mark_sequence_dirty()")
    else:
        for name in _SQLITE_TRIGGER_NAMES:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_index("ix_deployments_station", table_name="deployments")
    op.drop_index("ix_media_groups_deployment_kind", table_name="media_groups")
    op.create_index("ix_media_groups_deployment_kind", "media_groups", ["deployment_id", "kind"])
    op.drop_index("ix_sequence_labels_label_start", table_name="sequence_labels")
    op.drop_index("ix_sequence_labels_label_reviewed", table_name="sequence_labels")
    op.drop_table("sequence_labels")
    op.drop_table("sequence_summaries")
    op.drop_table("sequence_dirty")
