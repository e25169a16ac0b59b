"""The project database: one schema for the embedded SQLite file and PostgreSQL.

Times: ``*_local`` columns hold the naive wall-clock time at the station (what a
ranger reads off the camera once it is corrected); ``*_utc`` columns hold naive
UTC. Both are kept because analyses of activity need local solar time while
merging cards from several time zones needs UTC.

The schema changes only through Alembic migrations in ``irbis/store/migrations``.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class Site(Base):
    """A study area (a national park, a massif) grouping stations."""

    __tablename__ = "sites"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)


class Station(Base):
    """A place where cameras are set up, with its coordinates and covariates."""

    __tablename__ = "stations"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"))
    lon: Mapped[float | None] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)
    x: Mapped[float | None] = mapped_column(Float)
    y: Mapped[float | None] = mapped_column(Float)
    crs: Mapped[str | None] = mapped_column(String(100))
    elevation: Mapped[float | None] = mapped_column(Float)
    covariates: Mapped[dict] = mapped_column(JSON, default=dict)

    deployments: Mapped[list[Deployment]] = relationship(back_populates="station")


class Camera(Base):
    """A physical camera, known by make, model and serial number."""

    __tablename__ = "cameras"
    __table_args__ = (UniqueConstraint("make", "model", "serial", name="uq_camera_identity"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    make: Mapped[str] = mapped_column(String(100), default="")
    model: Mapped[str] = mapped_column(String(100), default="")
    serial: Mapped[str] = mapped_column(String(100), default="")


class Deployment(Base):
    """One camera at one station for one period, with its clock correction."""

    __tablename__ = "deployments"
    __table_args__ = (Index("ix_deployments_station", "station_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(200), unique=True)
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id"))
    camera_id: Mapped[int | None] = mapped_column(ForeignKey("cameras.id"))
    start_local: Mapped[datetime] = mapped_column(DateTime)
    end_local: Mapped[datetime] = mapped_column(DateTime)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    # Seconds added to the camera clock to get true local time.
    clock_offset_s: Mapped[float] = mapped_column(Float, default=0.0)
    # A calendar shift in camtrapR's "Y:m:d H:M:S" form with sign, applied
    # before the offset (a clock reset by exactly one year is not N seconds).
    clock_shift: Mapped[str | None] = mapped_column(String(40))
    comments: Mapped[str] = mapped_column(Text, default="")
    # Fields of an imported package irbis does not model, kept for the round trip.
    extra: Mapped[dict] = mapped_column(JSON, default=dict)

    station: Mapped[Station] = relationship(back_populates="deployments")
    camera: Mapped[Camera | None] = relationship()
    malfunctions: Mapped[list[Malfunction]] = relationship(
        back_populates="deployment", cascade="all, delete-orphan"
    )


class Malfunction(Base):
    """A period a deployed camera did not record (buried in snow, flat battery)."""

    __tablename__ = "malfunctions"
    id: Mapped[int] = mapped_column(primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    start_local: Mapped[datetime] = mapped_column(DateTime)
    end_local: Mapped[datetime] = mapped_column(DateTime)
    reason: Mapped[str] = mapped_column(Text, default="")

    deployment: Mapped[Deployment] = relationship(back_populates="malfunctions")


class IngestBatch(Base):
    """One run of ``irbis ingest`` over one card."""

    __tablename__ = "ingest_batches"
    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(Text)
    started_utc: Mapped[datetime] = mapped_column(DateTime)
    finished_utc: Mapped[datetime | None] = mapped_column(DateTime)
    status: Mapped[str] = mapped_column(String(20), default="running")
    options: Mapped[dict] = mapped_column(JSON, default=dict)
    n_seen: Mapped[int] = mapped_column(Integer, default=0)
    n_new: Mapped[int] = mapped_column(Integer, default=0)
    n_duplicate: Mapped[int] = mapped_column(Integer, default=0)
    n_rejected: Mapped[int] = mapped_column(Integer, default=0)
    bytes_read: Mapped[int] = mapped_column(BigInteger, default=0)


class MediaGroup(Base):
    """A burst (``sequence``) or an independent ``event`` within one deployment.

    Ids are stable across ingests (links to ``/sequences/ID`` stay valid): a
    group that grows keeps its id. A group that a later regrouping absorbs or
    empties is never deleted but retired (``kind`` ``old-seq``/``old-event``,
    migration 0011) with ``first_media_id`` naming its first frame, so an old
    link can be sent to whichever group holds that frame now, and the id is
    never reused.
    """

    __tablename__ = "media_groups"
    __table_args__ = (
        # Also a station's sequences in grid order (migration 0006).
        Index("ix_media_groups_deployment_kind", "deployment_id", "kind", "start_utc", "id"),
        # The review grid pages sequences in (start_utc, id) order (migration 0005).
        Index("ix_media_groups_kind_start", "kind", "start_utc", "id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))  # "sequence" | "event"
    start_utc: Mapped[datetime] = mapped_column(DateTime)
    end_utc: Mapped[datetime] = mapped_column(DateTime)
    n_media: Mapped[int] = mapped_column(Integer)
    # Retired groups only: their first frame, whose group an old link leads to.
    first_media_id: Mapped[int | None] = mapped_column(Integer)


class Media(Base):
    """One original photo or video, stored content-addressed by its sha256."""

    __tablename__ = "media"
    __table_args__ = (
        Index("ix_media_deployment_time", "deployment_id", "timestamp_utc"),
        Index("ix_media_sequence", "sequence_id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    size: Mapped[int] = mapped_column(BigInteger)
    mediatype: Mapped[str] = mapped_column(String(10))
    mime: Mapped[str] = mapped_column(String(40))
    storage: Mapped[str] = mapped_column(String(10))  # "copy" | "reference"
    # Relative to the project's blob folder (copy) or absolute (reference).
    stored_path: Mapped[str] = mapped_column(Text)
    file_name: Mapped[str] = mapped_column(String(400))
    source_relpath: Mapped[str] = mapped_column(Text)
    batch_id: Mapped[int] = mapped_column(ForeignKey("ingest_batches.id"))
    deployment_id: Mapped[int | None] = mapped_column(ForeignKey("deployments.id"))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    duration_s: Mapped[float | None] = mapped_column(Float)
    make: Mapped[str | None] = mapped_column(String(100))
    model: Mapped[str | None] = mapped_column(String(100))
    serial: Mapped[str | None] = mapped_column(String(100))
    tags: Mapped[list] = mapped_column(JSON, default=list)
    # The camera's own clock reading, never changed after ingest.
    taken_raw: Mapped[datetime | None] = mapped_column(DateTime)
    taken_source: Mapped[str | None] = mapped_column(String(20))
    file_utc_offset_min: Mapped[int | None] = mapped_column(Integer)
    # Corrected times (clock shift and offset of the deployment applied).
    timestamp_local: Mapped[datetime | None] = mapped_column(DateTime)
    timestamp_utc: Mapped[datetime | None] = mapped_column(DateTime)
    utc_offset_min: Mapped[int | None] = mapped_column(Integer)
    # "" when the time is trusted; otherwise why not (see irbis.ingest.timing).
    time_flag: Mapped[str] = mapped_column(String(40), default="")
    sequence_id: Mapped[int | None] = mapped_column(
        ForeignKey("media_groups.id", ondelete="SET NULL")
    )
    event_id: Mapped[int | None] = mapped_column(ForeignKey("media_groups.id", ondelete="SET NULL"))
    # The mediaID of an imported package; irbis's own media are "m<id>".
    uid: Mapped[str | None] = mapped_column(String(200))
    # Bumped by every human labelling of this file: reviewers send the version
    # they saw and a stale one is a conflict, never a silent lost update.
    review_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    extra: Mapped[dict] = mapped_column(JSON, default=dict)


class Observation(Base):
    """Who or what said what is in a media file (or in a whole event).

    Folder names and XMP tags from a sorted card are observations too, with
    ``source`` saying so. Nothing here is ever overwritten or deleted by a
    reviewer: a correction is a new row and the old one is *retracted*
    (``retracted_utc``/``retracted_by`` set), so who-said-what stays readable.

    ``level`` follows Camtrap DP: ``media`` rows name one file (``media_id``);
    ``event`` rows name a time span of a deployment (``deployment_id``,
    ``event_start_utc``/``event_end_utc``) and leave ``media_id`` empty.
    Boxes are normalised to the image (0..1, top-left origin).
    """

    __tablename__ = "observations"
    __table_args__ = (
        Index("ix_observations_media", "media_id"),
        Index("ix_observations_individual", "individual_id"),
        # The review grid filters sequences by species and by "a person labelled it".
        Index("ix_observations_species", "species"),
        Index("ix_observations_source", "source"),
        # Per-media "current (human) label of species X?" probes from the index alone.
        Index("ix_observations_media_current", "media_id", "retracted_utc", "source", "species"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    media_id: Mapped[int | None] = mapped_column(ForeignKey("media.id", ondelete="CASCADE"))
    species: Mapped[str | None] = mapped_column(String(200))
    individual: Mapped[str | None] = mapped_column(String(200))
    count: Mapped[int | None] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(40))  # "folder" | "xmp" | "human" | "model:..."
    by: Mapped[str] = mapped_column(String(200), default="")
    created_utc: Mapped[datetime] = mapped_column(DateTime)
    level: Mapped[str] = mapped_column(String(10), default="media", server_default="media")
    deployment_id: Mapped[int | None] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE")
    )
    # Identifiers from an imported package, kept so a round trip is lossless.
    uid: Mapped[str | None] = mapped_column(String(200))
    event_uid: Mapped[str | None] = mapped_column(String(200))
    event_start_utc: Mapped[datetime | None] = mapped_column(DateTime)
    event_end_utc: Mapped[datetime | None] = mapped_column(DateTime)
    # animal | human | vehicle | blank | unknown | unclassified (Camtrap DP vocabulary)
    observation_type: Mapped[str] = mapped_column(
        String(20), default="animal", server_default="animal"
    )
    individual_id: Mapped[int | None] = mapped_column(
        ForeignKey("individuals.id", ondelete="SET NULL")
    )
    side: Mapped[str | None] = mapped_column(String(10))  # flank: left | right | unknown
    life_stage: Mapped[str | None] = mapped_column(String(40))
    sex: Mapped[str | None] = mapped_column(String(40))
    behavior: Mapped[str | None] = mapped_column(String(200))
    bbox_x: Mapped[float | None] = mapped_column(Float)
    bbox_y: Mapped[float | None] = mapped_column(Float)
    bbox_w: Mapped[float | None] = mapped_column(Float)
    bbox_h: Mapped[float | None] = mapped_column(Float)
    probability: Mapped[float | None] = mapped_column(Float)
    comments: Mapped[str] = mapped_column(Text, default="", server_default="")
    extra: Mapped[dict] = mapped_column(JSON, default=dict)
    retracted_utc: Mapped[datetime | None] = mapped_column(DateTime)
    retracted_by: Mapped[str] = mapped_column(String(200), default="", server_default="")


class Rejection(Base):
    """A file from a card that was not ingested, and why (the quarantine list)."""

    __tablename__ = "rejections"
    __table_args__ = (UniqueConstraint("source", "relpath", name="uq_rejection_file"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("ingest_batches.id"))
    source: Mapped[str] = mapped_column(Text)
    relpath: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    hint: Mapped[str] = mapped_column(Text, default="")
    created_utc: Mapped[datetime] = mapped_column(DateTime)


class MediaDetection(Base):
    """One detector configuration's result for one media file (``irbis detect``).

    The row is also the "done" marker that makes the stage resumable: a media
    file with a row for a ``detector`` key is never processed again with that
    key. ``detector`` spells the whole configuration (model, version,
    threshold, motion fusion), so changing any of them gives new rows and
    keeps the old ones for comparison.
    """

    __tablename__ = "media_detections"
    __table_args__ = (UniqueConstraint("media_id", "detector", name="uq_media_detection"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    media_id: Mapped[int] = mapped_column(ForeignKey("media.id", ondelete="CASCADE"))
    detector: Mapped[str] = mapped_column(String(200))
    model: Mapped[str] = mapped_column(String(100))
    model_version: Mapped[str] = mapped_column(String(100))
    threshold: Mapped[float] = mapped_column(Float)
    # "blank" | "animal" | "person" | "vehicle" | "error" (unreadable file).
    verdict: Mapped[str] = mapped_column(String(10))
    max_score: Mapped[float] = mapped_column(Float, default=0.0)
    n_boxes: Mapped[int] = mapped_column(Integer, default=0)
    # Frames looked at: 1 for a photo, the sampled frames of a video.
    n_frames: Mapped[int] = mapped_column(Integer, default=1)
    best_frame: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str] = mapped_column(Text, default="")
    # Which media were judged together (a fused detector compares a burst's
    # frames): a digest of their ids. Ingest rebuilds sequences; a sequence whose
    # media were all judged together already gets its verdict back without
    # running the detector again.
    burst: Mapped[str] = mapped_column(String(40), default="")
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    created_utc: Mapped[datetime] = mapped_column(DateTime)


class DetectionBox(Base):
    """One box found in one frame of a media file, above the detector's threshold.

    ``x, y, width, height`` are fractions of the frame (Camtrap DP's
    ``bboxX/bboxY/bboxWidth/bboxHeight``); ``frame`` is 0 for a photo and the
    sampled frame's index for a video (``time_s`` its offset).
    """

    __tablename__ = "detections"
    __table_args__ = (
        Index("ix_detections_media", "media_id"),
        Index("ix_detections_result", "result_id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    result_id: Mapped[int] = mapped_column(ForeignKey("media_detections.id", ondelete="CASCADE"))
    media_id: Mapped[int] = mapped_column(ForeignKey("media.id", ondelete="CASCADE"))
    frame: Mapped[int] = mapped_column(Integer, default=0)
    time_s: Mapped[float | None] = mapped_column(Float)
    category: Mapped[str] = mapped_column(String(10))
    score: Mapped[float] = mapped_column(Float)
    x: Mapped[float] = mapped_column(Float)
    y: Mapped[float] = mapped_column(Float)
    width: Mapped[float] = mapped_column(Float)
    height: Mapped[float] = mapped_column(Float)
    # What made the box: the model's name, "motion", or "fused".
    source: Mapped[str] = mapped_column(String(40))


class ReviewedBox(Base):
    """A box a person drew, moved or confirmed on one frame, or "no animal here".

    Kept beside the machine's boxes (:class:`DetectionBox`), never over them.
    ``category``: ``animal`` | ``person`` | ``vehicle`` with a box, ``blank``
    (no coordinates: a person confirmed there is no animal), or ``animal``
    without coordinates ("an animal is here", box not drawn). ``x, y, width,
    height`` are fractions of the frame, top-left origin, like detections.
    Moving or deleting a box retracts its row and (for a move) adds a new one;
    the current boxes of a frame are the rows with no ``retracted_utc``.
    ``detection_id`` names the machine box a person started from, if any;
    ``source`` is ``human`` or where an import came from (``boxes.csv``).
    """

    __tablename__ = "reviewed_boxes"
    __table_args__ = (Index("ix_reviewed_boxes_media", "media_id", "frame"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    media_id: Mapped[int] = mapped_column(ForeignKey("media.id", ondelete="CASCADE"))
    frame: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    category: Mapped[str] = mapped_column(String(10))
    x: Mapped[float | None] = mapped_column(Float)
    y: Mapped[float | None] = mapped_column(Float)
    width: Mapped[float | None] = mapped_column(Float)
    height: Mapped[float | None] = mapped_column(Float)
    detection_id: Mapped[int | None] = mapped_column(
        ForeignKey("detections.id", ondelete="SET NULL")
    )
    source: Mapped[str] = mapped_column(String(40), default="human", server_default="human")
    created_by: Mapped[str] = mapped_column(String(200), default="", server_default="")
    created_utc: Mapped[datetime] = mapped_column(DateTime)
    retracted_utc: Mapped[datetime | None] = mapped_column(DateTime)
    retracted_by: Mapped[str] = mapped_column(String(200), default="", server_default="")


class SequenceVerdict(Base):
    """A detector configuration's verdict on one sequence (burst) and its best frame."""

    __tablename__ = "sequence_verdicts"
    __table_args__ = (UniqueConstraint("sequence_id", "detector", name="uq_sequence_verdict"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    sequence_id: Mapped[int] = mapped_column(ForeignKey("media_groups.id", ondelete="CASCADE"))
    detector: Mapped[str] = mapped_column(String(200))
    model: Mapped[str] = mapped_column(String(100))
    model_version: Mapped[str] = mapped_column(String(100))
    threshold: Mapped[float] = mapped_column(Float)
    verdict: Mapped[str] = mapped_column(String(10))  # blank | animal | person | vehicle
    best_media_id: Mapped[int | None] = mapped_column(ForeignKey("media.id", ondelete="SET NULL"))
    best_frame: Mapped[int | None] = mapped_column(Integer)
    best_score: Mapped[float] = mapped_column(Float, default=0.0)
    n_media: Mapped[int] = mapped_column(Integer, default=0)
    n_blank: Mapped[int] = mapped_column(Integer, default=0)
    n_animal: Mapped[int] = mapped_column(Integer, default=0)
    n_person: Mapped[int] = mapped_column(Integer, default=0)
    n_vehicle: Mapped[int] = mapped_column(Integer, default=0)
    created_utc: Mapped[datetime] = mapped_column(DateTime)


class Individual(Base):
    """A known animal of the catalogue ("Khan"), identified by its coat pattern.

    Merging two individuals keeps the absorbed row with ``merged_into_id`` set,
    so old references and the decision history still resolve.
    """

    __tablename__ = "individuals"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    species: Mapped[str] = mapped_column(String(200), default="Panthera uncia")
    sex: Mapped[str] = mapped_column(String(20), default="unknown")  # female|male|unknown
    notes: Mapped[str] = mapped_column(Text, default="")
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("individuals.id"))
    created_by: Mapped[str] = mapped_column(String(200), default="")
    created_utc: Mapped[datetime] = mapped_column(DateTime)


class Annotation(Base):
    """An animal crop used for identification: a box on one frame, its flank side.

    ``source`` is ``detector`` (from a detection box) or ``human`` (drawn);
    ``individual_id`` is set once a person confirmed who it is.
    """

    __tablename__ = "annotations"
    __table_args__ = (
        Index("ix_annotations_media", "media_id"),
        Index("ix_annotations_individual", "individual_id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    media_id: Mapped[int] = mapped_column(ForeignKey("media.id", ondelete="CASCADE"))
    frame: Mapped[int] = mapped_column(Integer, default=0)
    x: Mapped[float] = mapped_column(Float)
    y: Mapped[float] = mapped_column(Float)
    width: Mapped[float] = mapped_column(Float)
    height: Mapped[float] = mapped_column(Float)
    side: Mapped[str] = mapped_column(String(10), default="unknown")
    quality: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(40), default="human")
    by: Mapped[str] = mapped_column(String(200), default="")
    individual_id: Mapped[int | None] = mapped_column(
        ForeignKey("individuals.id", ondelete="SET NULL")
    )
    version: Mapped[int] = mapped_column(Integer, default=0)
    created_utc: Mapped[datetime] = mapped_column(DateTime)


class MatchDecision(Base):
    """A proposed or decided identification of an annotation.

    Machine proposals (``by`` = ``model:...``, ``decision`` = ``proposed``)
    carry score, probability and the matched keypoints so a reviewer can see
    why; a person's answer is a new row: ``same`` (as ``individual_id``),
    ``different``, ``new`` or ``unsure``.
    """

    __tablename__ = "match_decisions"
    __table_args__ = (Index("ix_match_decisions_annotation", "annotation_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    annotation_id: Mapped[int] = mapped_column(ForeignKey("annotations.id", ondelete="CASCADE"))
    individual_id: Mapped[int | None] = mapped_column(
        ForeignKey("individuals.id", ondelete="SET NULL")
    )
    decision: Mapped[str] = mapped_column(String(20))
    rank: Mapped[int | None] = mapped_column(Integer)
    score: Mapped[float | None] = mapped_column(Float)
    probability: Mapped[float | None] = mapped_column(Float)
    matches: Mapped[dict] = mapped_column(JSON, default=dict)
    side: Mapped[str | None] = mapped_column(String(10))
    by: Mapped[str] = mapped_column(String(200), default="")
    created_utc: Mapped[datetime] = mapped_column(DateTime)


class User(Base):
    """A member of the census team (for the web app).

    ``role``: ``viewer`` < ``reviewer`` < ``admin``. Only users with
    ``precise_locations`` see sensitive species' stations at full precision.
    """

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    organisation: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(20), default="reviewer")
    precise_locations: Mapped[bool] = mapped_column(Boolean, default=False)
    token_hash: Mapped[str | None] = mapped_column(String(128))
    created_utc: Mapped[datetime] = mapped_column(DateTime)


class WebSession(Base):
    """A browser's login (migration 0009): a random id in a cookie, expiring, revocable.

    Only the sha256 of the id is stored. A session is separate from the
    user's API token: logging out, expiry or ``irbis users revoke`` ends it
    without anyone learning or changing the token.
    """

    __tablename__ = "web_sessions"
    __table_args__ = (Index("ix_web_sessions_user", "user_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    id_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_utc: Mapped[datetime] = mapped_column(DateTime)
    expires_utc: Mapped[datetime] = mapped_column(DateTime)
    revoked_utc: Mapped[datetime | None] = mapped_column(DateTime)
    ip: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(300), default="")


class AuditEntry(Base):
    """Who changed or took what, when, with the state before and after (migration 0010).

    ``action``: ``label``, ``label.undo``, ``identify``, ``split``, ``merge``,
    ``unmerge``, ``registry.station``, ``registry.deployment``,
    ``registry.import``, ``user.add``, ``user.role``, ``user.revoke``,
    ``user.token``, ``download``, ``export``. ``target`` names the thing
    (``individual:12``, ``sequence:40``, ``station:A1``, ``user:tara``,
    ``media:7``, an export folder). ``before``/``after`` are JSON (``None``
    where there was nothing); ``detail`` says more (the address, the options).
    Rows are only ever added.
    """

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_at", "at_utc"),
        Index("ix_audit_log_action", "action", "at_utc"),
        Index("ix_audit_log_target", "target"),
        Index("ix_audit_log_actor", "actor", "at_utc"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    at_utc: Mapped[datetime] = mapped_column(DateTime)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(40))
    target: Mapped[str] = mapped_column(String(400), default="")
    before: Mapped[dict | list | None] = mapped_column(JSON, nullable=True)
    after: Mapped[dict | list | None] = mapped_column(JSON, nullable=True)
    detail: Mapped[dict] = mapped_column(JSON, default=dict)


class Transect(Base):
    """A sign transect walked on one day (migration 0012; SLIMS method).

    ``line`` is the walked line as ``[[a, b], ...]``: ``[lon, lat]`` pairs when
    ``crs`` is empty, else ``[x, y]`` in ``crs`` (metres). ``length_m`` is the
    length given, or measured along the line. The line is sensitive (it runs
    through leopard habitat): users without precise locations get its length
    only.
    """

    __tablename__ = "transects"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(200), unique=True)
    walked_on: Mapped[date | None] = mapped_column(Date)
    observers: Mapped[str] = mapped_column(Text, default="")
    organisation: Mapped[str] = mapped_column(String(200), default="")
    length_m: Mapped[float | None] = mapped_column(Float)
    line: Mapped[list] = mapped_column(JSON, default=list)
    crs: Mapped[str | None] = mapped_column(String(100))
    notes: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(400), default="")
    created_by: Mapped[str] = mapped_column(String(200), default="")
    created_utc: Mapped[datetime] = mapped_column(DateTime)
    updated_by: Mapped[str] = mapped_column(String(200), default="")
    updated_utc: Mapped[datetime | None] = mapped_column(DateTime)


class Genotype(Base):
    """A genetic individual: one multilocus genotype a laboratory told apart (migration 0012).

    It stands as an animal of its own until a person links it to an
    individual of the photo catalogue (:class:`GenotypeLink`).
    """

    __tablename__ = "genotypes"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(200), unique=True)
    species: Mapped[str] = mapped_column(String(200), default="Panthera uncia")
    sex: Mapped[str] = mapped_column(String(20), default="unknown")
    lab: Mapped[str] = mapped_column(String(200), default="")
    notes: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(200), default="")
    created_utc: Mapped[datetime] = mapped_column(DateTime)


class GenotypeLink(Base):
    """A person's statement that a genotype is a photo-identified individual (migration 0012).

    Never deleted: unlinking sets ``retracted_utc``/``retracted_by``. The
    current links are the rows without ``retracted_utc``; a genotype with
    current links to two animals, or an animal with two genotypes, is a
    conflict that irbis shows (:func:`irbis.store.genetics.conflicts`).
    """

    __tablename__ = "genotype_links"
    __table_args__ = (
        Index("ix_genotype_links_genotype", "genotype_id"),
        Index("ix_genotype_links_individual", "individual_id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    genotype_id: Mapped[int] = mapped_column(ForeignKey("genotypes.id", ondelete="CASCADE"))
    individual_id: Mapped[int] = mapped_column(ForeignKey("individuals.id"))
    linked_by: Mapped[str] = mapped_column(String(200), default="")
    linked_utc: Mapped[datetime] = mapped_column(DateTime)
    note: Mapped[str] = mapped_column(Text, default="")
    retracted_utc: Mapped[datetime | None] = mapped_column(DateTime)
    retracted_by: Mapped[str] = mapped_column(String(200), default="")


class FieldRecord(Base):
    """A point observation made in the field, not by a camera (migration 0012).

    ``kind``: ``scat_sample`` (a scat collected for DNA: ``sample_id``,
    ``lab``, ``genotype_id``, ``sex``), ``snare`` (a snare or other threat:
    ``threat_type``, ``status`` found/removed, ``target_species``,
    ``action_taken``) or ``sign`` (``sign_type`` scrape, track, scat,
    claw_mark, spray; ``sign_age`` fresh/old; usually on a ``transect_id``).
    ``uid`` is the record's key in the tables it came from, so importing a
    table again changes only what changed. The place is sensitive unless a
    person said otherwise (``sensitive``): users without precise locations
    and public exports get it snapped to the policy's grid. Times as in
    :class:`Media`: local wall-clock time, UTC and the offset between them.
    ``media_ids`` names photos of the project; ``files`` are photos stored
    with the record (``[{"name", "sha256", "size", "path"}]``).
    """

    __tablename__ = "field_records"
    __table_args__ = (
        Index("ix_field_records_kind_time", "kind", "observed_utc"),
        Index("ix_field_records_transect", "transect_id"),
        Index("ix_field_records_genotype", "genotype_id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    observed_local: Mapped[datetime] = mapped_column(DateTime)
    observed_utc: Mapped[datetime] = mapped_column(DateTime)
    utc_offset_min: Mapped[int] = mapped_column(Integer, default=0)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    lon: Mapped[float | None] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)
    x: Mapped[float | None] = mapped_column(Float)
    y: Mapped[float | None] = mapped_column(Float)
    crs: Mapped[str | None] = mapped_column(String(100))
    elevation: Mapped[float | None] = mapped_column(Float)
    sensitive: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    observer: Mapped[str] = mapped_column(String(200), default="")
    organisation: Mapped[str] = mapped_column(String(200), default="")
    species: Mapped[str | None] = mapped_column(String(200))
    count: Mapped[int | None] = mapped_column(Integer)
    transect_id: Mapped[int | None] = mapped_column(
        ForeignKey("transects.id", ondelete="SET NULL")
    )
    sample_id: Mapped[str | None] = mapped_column(String(200), unique=True)
    lab: Mapped[str] = mapped_column(String(200), default="")
    genotype_id: Mapped[int | None] = mapped_column(
        ForeignKey("genotypes.id", ondelete="SET NULL")
    )
    sex: Mapped[str | None] = mapped_column(String(20))
    threat_type: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str | None] = mapped_column(String(20))
    target_species: Mapped[str | None] = mapped_column(String(200))
    action_taken: Mapped[str] = mapped_column(Text, default="")
    sign_type: Mapped[str | None] = mapped_column(String(20))
    sign_age: Mapped[str | None] = mapped_column(String(10))
    media_ids: Mapped[list] = mapped_column(JSON, default=list)
    files: Mapped[list] = mapped_column(JSON, default=list)
    notes: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(400), default="")
    created_by: Mapped[str] = mapped_column(String(200), default="")
    created_utc: Mapped[datetime] = mapped_column(DateTime)
    updated_by: Mapped[str] = mapped_column(String(200), default="")
    updated_utc: Mapped[datetime | None] = mapped_column(DateTime)


class LoginAttempt(Base):
    """One try at the login form (migration 0009): the login log and the rate limit's memory."""

    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_name_ip", "user_name", "ip", "created_utc"),
        Index("ix_login_attempts_ip", "ip", "created_utc"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    user_name: Mapped[str] = mapped_column(String(200), default="")
    ip: Mapped[str] = mapped_column(String(64), default="")
    ok: Mapped[bool] = mapped_column(Boolean, default=False)
    # "ok", "unknown token", "rate limited", ...
    outcome: Mapped[str] = mapped_column(String(40), default="")
    created_utc: Mapped[datetime] = mapped_column(DateTime)


# Derived tables (migration 0006). Everything below is recomputed from media,
# observations and media_groups by ``irbis.store.sequence_summary.refresh``;
# database triggers queue the sequences whose rows changed in
# ``sequence_dirty``, whatever program wrote them. Never edited by hand.


class SequenceDirty(Base):
    """A sequence whose summary must be recomputed (one row per change; duplicates are fine)."""

    __tablename__ = "sequence_dirty"
    id: Mapped[int] = mapped_column(primary_key=True)
    sequence_id: Mapped[int] = mapped_column(Integer)


class SequenceSummary(Base):
    """What the review grid shows of one sequence, precomputed.

    ``labels`` and ``media`` are JSON text: the current labels (a person's when
    one labelled it, else what folders, tags and models said) and
    ``[[media id, review version], ...]``.
    """

    __tablename__ = "sequence_summaries"
    sequence_id: Mapped[int] = mapped_column(
        ForeignKey("media_groups.id", ondelete="CASCADE"), primary_key=True
    )
    start_local: Mapped[datetime | None] = mapped_column(DateTime)
    reviewed: Mapped[bool] = mapped_column(Boolean, default=False)
    labels: Mapped[str] = mapped_column(Text, default="[]")
    media: Mapped[str] = mapped_column(Text, default="[]")


class SequenceLabel(Base):
    """One current label of a sequence (``*`` for every sequence), for the grid's filters.

    ``start_utc`` repeats the sequence's start so that "the next page of
    sequences labelled X, not yet reviewed" is one walk of an index.
    """

    __tablename__ = "sequence_labels"
    __table_args__ = (
        Index("ix_sequence_labels_label_reviewed", "label", "reviewed", "start_utc", "sequence_id"),
        Index("ix_sequence_labels_label_start", "label", "start_utc", "sequence_id"),
    )
    sequence_id: Mapped[int] = mapped_column(
        ForeignKey("media_groups.id", ondelete="CASCADE"), primary_key=True
    )
    label: Mapped[str] = mapped_column(String(200), primary_key=True)
    reviewed: Mapped[bool] = mapped_column(Boolean, default=False)
    start_utc: Mapped[datetime] = mapped_column(DateTime)
