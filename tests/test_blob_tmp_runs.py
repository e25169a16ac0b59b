"""An ingest starting never deletes the temp files of another ingest still running.

Before: every ingest began by emptying the project's ``tmp/``, so with two
ingests at once (a PostgreSQL team server) the second deleted the first's
half-written originals, which the first then refused as unreadable, and it
wiped the identification stage's feature cache in ``tmp/reid`` too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from irbis.ingest.blobs import RUN_PREFIX, BlobStore

# A run that writes one temp file, says where, and waits to be told to end.
RUN = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from irbis.ingest.blobs import BlobStore
    store = BlobStore(Path(sys.argv[1]), Path(sys.argv[2]))
    store.begin_run()
    part = store.tmp / "blob-in-flight"
    part.write_bytes(b"half an original")
    print(part, flush=True)
    sys.stdin.readline()
    store.end_run()
    """
)


def _start(root: Path) -> tuple[subprocess.Popen, Path]:
    proc = subprocess.Popen(
        [sys.executable, "-c", RUN, str(root / "blobs"), str(root / "tmp")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    return proc, Path(proc.stdout.readline().strip())


def test_a_live_runs_files_survive_and_a_dead_runs_go(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    (tmp / "reid").mkdir(parents=True)
    (tmp / "reid" / "features.npz").write_bytes(b"cache")
    old_loose = tmp / "blob-abc"
    old_loose.write_bytes(b"left by an old version")
    day_ago = time.time() - 2 * 24 * 3600
    os.utime(old_loose, (day_ago, day_ago))
    fresh_loose = tmp / "video-xyz"
    fresh_loose.write_bytes(b"maybe someone's")

    live, live_part = _start(tmp_path)
    dead, dead_part = _start(tmp_path)
    dead.kill()
    dead.wait(timeout=30)
    assert live_part.exists() and dead_part.exists()

    store = BlobStore(tmp_path / "blobs", tmp)
    store.begin_run()
    assert live_part.read_bytes() == b"half an original"  # the live run's file stays
    assert not dead_part.parent.exists()  # the killed run's folder is cleared
    assert (tmp / "reid" / "features.npz").exists()  # not ingest's to clear
    assert not old_loose.exists() and fresh_loose.exists()
    rel = store.put_bytes(b"an original", "ab" * 32, ".jpg")
    assert (tmp_path / "blobs" / rel).read_bytes() == b"an original"
    assert store.tmp.name.startswith(RUN_PREFIX) and store.tmp != live_part.parent

    live.communicate("\n", timeout=30)
    assert live.returncode == 0 and not live_part.parent.exists()
    store.end_run()
    assert sorted(p.name for p in tmp.iterdir()) == ["reid", "video-xyz"]
