"""A bounded atheris round over the registry, image metadata and Camtrap DP parsers.

``tests/fuzz_parsers.py`` is the harness; here it runs a fixed number of
inputs from a fixed seed (a few seconds), in its own process because libFuzzer
ends the process when it is done. Any input that makes a parser raise
anything but a one-line :class:`irbis.core.errors.IrbisError` is a crash: the
run exits non-zero and leaves the input as ``crash-*`` for a regression test.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from irbis.core.errors import BadInputError

HARNESS = Path(__file__).with_name("fuzz_parsers.py")
RUNS = 3000


def test_bounded_fuzz_round(tmp_path: Path) -> None:
    pytest.importorskip("atheris", reason="atheris is in the test extra")
    corpus = tmp_path / "corpus"
    run = subprocess.run(
        [
            sys.executable,
            str(HARNESS),
            str(corpus),
            f"-runs={RUNS}",
            "-seed=1",
            "-timeout=20",
            "-rss_limit_mb=2048",
            f"-artifact_prefix={tmp_path}/",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    crashes = sorted(p.name for p in tmp_path.glob("crash-*"))
    assert run.returncode == 0 and not crashes, f"{crashes}\n{run.stderr[-4000:]}"
    assert f"Done {RUNS} runs" in run.stderr
    # Every seed is a valid input of its target (else the round fuzzes error paths only).
    assert len(list(corpus.iterdir())) >= 10


def test_seeds_are_accepted(tmp_path: Path) -> None:
    """The harness's seeds parse without error, and a broken one is refused in one line."""
    pytest.importorskip("atheris", reason="atheris is in the test extra")
    sys.path.insert(0, str(HARNESS.parent))
    try:
        import fuzz_parsers as fp
    finally:
        sys.path.remove(str(HARNESS.parent))
    harness = fp.Harness(tmp_path)
    for seed in fp.seeds():
        target, body = seed[0], seed[1:]
        if target == fp.REGISTRY:
            (tmp_path / "t.csv").write_bytes(body)
            assert fp.read_registry_csv(tmp_path / "t.csv")
        elif target == fp.IMAGE:
            assert fp.read_metadata(body, "a.jpg").taken is not None
        else:
            harness(seed)
    assert harness.n_projects == 1 + sum(s[0] == fp.CAMTRAPDP for s in fp.seeds())
    with pytest.raises(BadInputError):
        fp.read_metadata(b"\xff\xd8\xff\xe1\x00\x10Exif\x00\x00MM\x00*", "a.jpg")


def test_found_by_fuzzing_offset_beyond_a_day(tmp_path: Path) -> None:
    """A registry time zone of ``+33:00`` was a ValueError traceback from datetime."""
    from irbis.ingest.registry_csv import read_registry_csv

    table = tmp_path / "registry.csv"
    table.write_text(
        "station,deployment,start,end,timezone\n"
        "K2,K2-A,2024-03-02,2024-04-02,+33:00\n"
        "K3,K3-A,2024-03-02,2024-04-02,+06:75\n"
    )
    with pytest.raises(BadInputError, match=r"registry.csv:row 2.*'\+33:00' is not a UTC offset"):
        read_registry_csv(table)
    table.write_text("station,start,end,timezone\nK2,2024-03-02,2024-04-02,-14:00\n")
    assert read_registry_csv(table)[1][0].timezone == "-14:00"


def test_found_by_fuzzing_newline_in_a_header_cell(tmp_path: Path) -> None:
    """A quoted header cell holding a line break made a two-line error message."""
    from irbis.ingest.registry_csv import read_registry_csv

    table = tmp_path / "camtraps.csv"
    table.write_text('Station,"utm_x\nutm_y",Setup_date\nA,1,02/04/2009\n')
    with pytest.raises(BadInputError) as err:
        read_registry_csv(table)
    assert len(str(err.value).splitlines()) == 1 and "utm_x\\nutm_y" in str(err.value)
