"""A copy of the project's originals in an S3-compatible object store.

Cluster nodes that do not mount the project folder read originals from here.
The mirror is addressed by a URL, ``s3://BUCKET/PREFIX``; the object of an
original is ``PREFIX/ab/cd/<sha256>.<ext>``, the blob store's own layout
(:meth:`irbis.ingest.blobs.BlobStore.relpath`), for copied and referenced
originals alike, so an object's name says what its bytes must hash to.

Where the store is: ``--s3-endpoint`` or ``IRBIS_S3_ENDPOINT`` (MinIO, Ceph,
Garage, ... e.g. ``http://storage.lan:9000``; none means AWS itself). Who may
read and write it: the usual ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``
(``AWS_SESSION_TOKEN``, ``AWS_DEFAULT_REGION``) environment variables, or
boto3's other sources (``~/.aws/credentials``, ``AWS_PROFILE``).

Workers keep what they fetched in a per-node cache (``IRBIS_BLOB_CACHE``, by
default ``~/.cache/irbis/blobs``), in the same layout: an object is fetched
once per node, its sha256 checked before it is used. The cache only grows;
deleting it any time is safe.

boto3 is an optional extra (``pip install 'irbis[s3]'``), imported when a
mirror is first used.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from irbis.core.errors import IrbisError
from irbis.ingest.blobs import BlobStore
from irbis.store.project import Project
from irbis.store.schema import Media

__all__ = [
    "BLOBS_ENV",
    "CACHE_ENV",
    "ENDPOINT_ENV",
    "BlobFetchError",
    "BlobMirror",
    "BlobMirrorError",
    "BlobRef",
    "CheckSummary",
    "PushSummary",
    "blob_refs",
    "check",
    "push",
]

#: Environment variable naming the mirror's URL when ``--blobs`` is not given.
BLOBS_ENV = "IRBIS_BLOBS_URL"
#: Environment variable naming the object store's endpoint (an S3-compatible server).
ENDPOINT_ENV = "IRBIS_S3_ENDPOINT"
#: Environment variable naming a node's cache of fetched originals.
CACHE_ENV = "IRBIS_BLOB_CACHE"
#: Originals a worker fetches at once: a request's latency, not bandwidth, bounds one fetch.
FETCH_THREADS = 8
#: Read and hash in pieces of this size (videos can be gigabytes).
_PIECE = 1 << 20


class BlobMirrorError(IrbisError):
    """A mirror URL, endpoint or store that cannot be used (the message says what to do)."""


class BlobFetchError(IrbisError):
    """An original missing from the mirror or not what its sha256 says (one line)."""


@dataclass(frozen=True)
class BlobRef:
    """One original as the mirror knows it: its media, object name and content."""

    media_id: int
    file_name: str
    relpath: str
    sha256: str
    size: int


@dataclass(frozen=True)
class BlobMirror:
    """Where the originals are mirrored, and how to reach them (picklable for Ray tasks).

    Parameters
    ----------
    bucket, prefix
        From ``s3://BUCKET/PREFIX`` (the prefix may be empty).
    endpoint
        The S3-compatible server's URL; ``None`` is AWS.
    region
        Signing region (most S3-compatible servers accept any).
    access_key, secret_key, session_token
        The driver's credentials, sent to workers with the task so that nodes
        need none of their own; ``None``: each process's boto3 finds its own.
        Kept out of ``repr``.
    cache_dir
        A node's cache of fetched originals; ``None``: ``$IRBIS_BLOB_CACHE`` on
        that node, else ``~/.cache/irbis/blobs``.
    """

    bucket: str
    prefix: str = ""
    endpoint: str | None = None
    region: str = "us-east-1"
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    cache_dir: str | None = None

    @classmethod
    def from_url(
        cls, url: str, *, endpoint: str | None = None, cache_dir: str | Path | None = None
    ) -> BlobMirror:
        """The mirror at ``s3://BUCKET/PREFIX``, endpoint and credentials from the environment.

        Raises
        ------
        BlobMirrorError
            Not an ``s3://`` URL with a bucket.
        """
        scheme, sep, rest = url.partition("://")
        bucket, _, prefix = rest.partition("/")
        if scheme.lower() != "s3" or not sep or not bucket:
            raise BlobMirrorError(
                f"{url!r}: not an object-store URL (write s3://BUCKET/PREFIX, the endpoint in "
                f"--s3-endpoint or {ENDPOINT_ENV})"
            )
        env = os.environ
        return cls(
            bucket=bucket,
            prefix=prefix.strip("/"),
            endpoint=endpoint or env.get(ENDPOINT_ENV) or None,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            access_key=env.get("AWS_ACCESS_KEY_ID") or None,
            secret_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
            session_token=env.get("AWS_SESSION_TOKEN") or None,
            cache_dir=str(cache_dir) if cache_dir is not None else None,
        )

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def key(self, relpath: str) -> str:
        """The object name of an original at ``relpath`` in the blob layout."""
        return f"{self.prefix}/{relpath}" if self.prefix else relpath

    def object_url(self, ref: BlobRef) -> str:
        return f"s3://{self.bucket}/{self.key(ref.relpath)}"

    def client(self) -> Any:
        """This process's boto3 S3 client for the mirror (made once, thread-safe)."""
        cli = _CLIENTS.get(self)
        if cli is None:
            cli = _CLIENTS[self] = _make_client(self)
        return cli

    def cache_root(self) -> Path:
        """This node's cache of fetched originals."""
        if self.cache_dir:
            return Path(self.cache_dir)
        env = os.environ.get(CACHE_ENV)
        return Path(env) if env else Path.home() / ".cache" / "irbis" / "blobs"

    # -- reading --------------------------------------------------------------------

    def fetch(self, ref: BlobRef) -> Path:
        """The original of ``ref`` in this node's cache, fetched and checked if not there yet.

        Raises
        ------
        BlobFetchError
            The object is missing, unreadable, or its bytes do not hash to the
            media's sha256; one line naming the media and the object.
        """
        root = self.cache_root()
        local = root / ref.relpath
        try:
            if local.stat().st_size == ref.size:
                return local  # checked when it was fetched
        except FileNotFoundError:
            pass
        local.parent.mkdir(parents=True, exist_ok=True)
        where = f"media {ref.media_id} ({ref.file_name}): {self.object_url(ref)}"
        try:
            body = self.client().get_object(Bucket=self.bucket, Key=self.key(ref.relpath))["Body"]
        except Exception as exc:
            if _is_missing(exc):
                raise BlobFetchError(
                    f"{where} is not in the object store (upload the originals: "
                    f"irbis blobs push PROJECT {self.url})"
                ) from exc
            raise BlobFetchError(f"{where} cannot be read ({_first_line(exc)})") from exc
        fd, tmp = tempfile.mkstemp(dir=local.parent, prefix=".fetch-")
        try:
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb") as fh:
                for piece in body.iter_chunks(_PIECE):
                    digest.update(piece)
                    fh.write(piece)
            got = digest.hexdigest()
            if got != ref.sha256:
                raise BlobFetchError(
                    f"{where} is corrupt: its bytes hash to {got[:12]}…, the media's sha256 is "
                    f"{ref.sha256[:12]}… (delete the object, then irbis blobs push PROJECT "
                    f"{self.url})"
                )
            os.replace(tmp, local)
        except BaseException:
            _unlink(tmp)
            raise
        return local

    def fetch_many(self, refs: list[BlobRef], threads: int = FETCH_THREADS) -> list[Path]:
        """:meth:`fetch` of several originals at once (an object store answers in parallel).

        Raises
        ------
        BlobFetchError
            The first of ``refs`` (in order) that cannot be fetched.
        """
        if len(refs) <= 1:
            return [self.fetch(r) for r in refs]
        with ThreadPoolExecutor(max_workers=min(threads, len(refs))) as pool:
            return list(pool.map(self.fetch, refs))

    def listing(self) -> dict[str, int]:
        """Every object under the prefix: relative path in the blob layout -> size."""
        head = f"{self.prefix}/" if self.prefix else ""
        out: dict[str, int] = {}
        try:
            pages = self.client().get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=self.bucket, Prefix=head):
                for obj in page.get("Contents", []):
                    out[obj["Key"][len(head) :]] = int(obj["Size"])
        except Exception as exc:
            if type(exc).__name__ in ("NoCredentialsError", "PartialCredentialsError"):
                raise BlobMirrorError(
                    f"{self.url}: no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
                ) from exc
            raise BlobMirrorError(
                f"{self.url}: cannot list the object store at {self.endpoint or 'AWS'} "
                f"({_first_line(exc)}; check the URL, --s3-endpoint or {ENDPOINT_ENV}, and the "
                "AWS_* credentials)"
            ) from exc
        return out


_CLIENTS: dict[BlobMirror, Any] = {}


def _make_client(mirror: BlobMirror) -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise BlobMirrorError(
            "reading originals from an object store needs boto3: pip install 'irbis[s3]'"
        ) from exc
    return boto3.session.Session().client(
        "s3",
        endpoint_url=mirror.endpoint,
        region_name=mirror.region,
        aws_access_key_id=mirror.access_key,
        aws_secret_access_key=mirror.secret_key,
        aws_session_token=mirror.session_token,
        # Path-style addressing: what self-hosted stores (MinIO, Ceph, Garage) serve.
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 5, "mode": "standard"},
            max_pool_connections=16,
        ),
    )


def _is_missing(exc: Exception) -> bool:
    code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
    return code in ("NoSuchKey", "404", "NotFound")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _unlink(name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name)


# -- the project's side -------------------------------------------------------------


def _relpath(storage: str, stored_path: str, sha256: str) -> str:
    """An original's name in the blob layout; a referenced one's extension from its path."""
    if storage == "copy":
        return stored_path.replace(os.sep, "/")
    return BlobStore.relpath(sha256, Path(stored_path).suffix)


def blob_refs(project: Project, media_ids: Iterable[int] | None = None) -> dict[int, BlobRef]:
    """Each media's object in the mirror (all media, or those of ``media_ids``)."""
    out: dict[int, BlobRef] = {}
    cols = (Media.id, Media.file_name, Media.storage, Media.stored_path, Media.sha256, Media.size)
    with project.session() as s:
        if media_ids is None:
            rows = s.execute(select(*cols).order_by(Media.id)).all()
        else:
            ids = sorted(set(media_ids))
            rows = []
            for k in range(0, len(ids), 500):
                rows += s.execute(select(*cols).where(Media.id.in_(ids[k : k + 500]))).all()
        for r in rows:
            out[r.id] = BlobRef(
                r.id, r.file_name, _relpath(r.storage, r.stored_path, r.sha256), r.sha256, r.size
            )
    return out


def _local_path(project: Project, media_ids: Iterable[int]) -> dict[int, Path]:
    with project.session() as s:
        return {
            r.id: project.blob_dir / r.stored_path if r.storage == "copy" else Path(r.stored_path)
            for r in s.execute(
                select(Media.id, Media.storage, Media.stored_path).where(
                    Media.id.in_(list(media_ids))
                )
            )
        }


@dataclass
class PushSummary:
    """What ``irbis blobs push`` did."""

    url: str
    media: int = 0
    uploaded: int = 0
    skipped: int = 0
    bytes_uploaded: int = 0
    errors: list[str] = field(default_factory=list)


def push(
    project: Project,
    mirror: BlobMirror,
    *,
    progress: Callable[[int, int, str], None] | None = None,
    threads: int = 8,
) -> PushSummary:
    """Upload the project's originals the mirror lacks (idempotent, resumable).

    An object already there with the original's size is skipped; every other
    original is read, its sha256 checked against the project's record (a
    changed file is reported, never uploaded), and put whole under its key with
    the sha256 in its metadata. An interrupted push leaves whole objects only
    (S3 puts are atomic), so running it again finishes the job.

    Parameters
    ----------
    project
        The open project.
    mirror
        Where to.
    progress
        Called with ``(done, total, file name)`` after each original.
    threads
        Uploads at a time.

    Returns
    -------
    PushSummary
    """
    refs = blob_refs(project)
    there = mirror.listing()
    summary = PushSummary(mirror.url, media=len(refs))
    todo = [r for r in refs.values() if there.get(r.relpath) != r.size]
    summary.skipped = len(refs) - len(todo)
    done = summary.skipped
    if progress:
        progress(done, len(refs), "")
    if not todo:
        return summary
    paths = {}
    for k in range(0, len(todo), 500):
        paths.update(_local_path(project, [r.media_id for r in todo[k : k + 500]]))
    client = mirror.client()

    def upload(ref: BlobRef) -> str | None:
        path = paths[ref.media_id]
        try:
            got = _sha256_of(path)
        except OSError as exc:
            return f"media {ref.media_id} ({ref.file_name}): cannot read {path} ({exc.strerror})"
        if got != ref.sha256:
            return (
                f"media {ref.media_id} ({ref.file_name}): {path} has changed since ingest "
                f"(sha256 {got[:12]}…, recorded {ref.sha256[:12]}…); not uploaded, run irbis "
                "audit PROJECT"
            )
        client.upload_file(
            str(path),
            mirror.bucket,
            mirror.key(ref.relpath),
            ExtraArgs={"Metadata": {"sha256": ref.sha256}},
        )
        return None

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        futures = {pool.submit(upload, r): r for r in todo}
        try:
            for fut in as_completed(futures):
                ref = futures[fut]
                try:
                    problem = fut.result()
                except Exception as exc:
                    raise BlobMirrorError(
                        f"{mirror.object_url(ref)}: upload failed ({_first_line(exc)}); run the "
                        "same push again to resume"
                    ) from exc
                if problem:
                    summary.errors.append(problem)
                else:
                    summary.uploaded += 1
                    summary.bytes_uploaded += ref.size
                done += 1
                if progress:
                    progress(done, len(refs), ref.file_name)
        except BaseException:
            for f in futures:  # interrupted: no new uploads; those running finish whole
                f.cancel()
            raise
    return summary


@dataclass
class CheckSummary:
    """What ``irbis blobs check`` found: originals the mirror has, lacks or holds wrongly."""

    url: str
    media: int = 0
    present: int = 0
    missing: list[str] = field(default_factory=list)
    wrong_size: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    extra: int = 0

    @property
    def ok(self) -> bool:
        return not (self.missing or self.wrong_size or self.corrupt)


def check(
    project: Project,
    mirror: BlobMirror,
    *,
    deep: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
) -> CheckSummary:
    """Compare the mirror with the project: by object sizes, and with ``deep`` by sha256.

    ``deep`` reads every object back (through this machine's cache, so a later
    run on this node reads none again).
    """
    refs = blob_refs(project)
    there = mirror.listing()
    summary = CheckSummary(mirror.url, media=len(refs))
    wanted = {r.relpath for r in refs.values()}
    summary.extra = sum(1 for k in there if k not in wanted)
    for n, ref in enumerate(refs.values(), 1):
        size = there.get(ref.relpath)
        name = f"media {ref.media_id} ({ref.file_name}): {mirror.object_url(ref)}"
        if size is None:
            summary.missing.append(name)
        elif size != ref.size:
            summary.wrong_size.append(f"{name} has {size} bytes, the original {ref.size}")
        elif deep:
            try:
                _drop_cached(mirror, ref)
                mirror.fetch(ref)
                summary.present += 1
            except BlobFetchError as exc:
                summary.corrupt.append(str(exc))
        else:
            summary.present += 1
        if progress:
            progress(n, len(refs), ref.file_name)
    return summary


def _drop_cached(mirror: BlobMirror, ref: BlobRef) -> None:
    _unlink(str(mirror.cache_root() / ref.relpath))


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while piece := fh.read(_PIECE):
            digest.update(piece)
    return digest.hexdigest()
