"""Bad SECR input gives one clear line naming the file/row, never a traceback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from irbis.core.errors import BadInputError
from irbis.stats import secr
from irbis.stats.secr_data import CaptureHistory, Mask, Traps, make_mask

runner = CliRunner()

TRAPS = "trapID,x,y,Topo\nT1,0,0,Saddle\nT2,1000,0,Canyon\nT3,0,1000,Canyon\nT4,1000,1000,Canyon\n"
CAPS = "ID,occasion,trapID,count\nA,1,T1,1\nA,1,T2,2\nB,1,T3,1\n"


def _files(tmp_path: Path, traps: str = TRAPS, caps: str = CAPS) -> tuple[Path, Path]:
    t, c = tmp_path / "traps.csv", tmp_path / "captures.csv"
    t.write_text(traps)
    c.write_text(caps)
    return t, c


def _one_line(exc: BadInputError) -> str:
    msg = str(exc)
    assert "\n" not in msg
    return msg


def test_unknown_trap_id_names_the_row(tmp_path: Path) -> None:
    t, c = _files(tmp_path, caps=CAPS + "C,1,T9,1\n")
    traps = secr.read_traps(t)
    with pytest.raises(BadInputError) as ei:
        secr.read_captures(c, traps)
    msg = _one_line(ei.value)
    assert f"{c}:5" in msg and "unknown trapID 'T9'" in msg


def test_mask_with_no_points(tmp_path: Path) -> None:
    m = tmp_path / "mask.csv"
    m.write_text("x,y,stdGC\n")
    with pytest.raises(BadInputError) as ei:
        secr.read_mask(m)
    assert "no points" in _one_line(ei.value) and str(m) in str(ei.value)
    with pytest.raises(BadInputError, match="no points"):
        Mask(np.zeros((0, 2)), 500.0)
    shapely = pytest.importorskip("shapely")
    traps = Traps(["A"], [(0.0, 0.0)])
    with pytest.raises(BadInputError, match="no points"):
        make_mask(traps, 1000.0, 100.0, polygon=shapely.box(5e4, 5e4, 6e4, 6e4))


def test_all_zero_histories(tmp_path: Path) -> None:
    t, c = _files(tmp_path, caps="ID,occasion,trapID,count\nA,1,T1,0\nB,1,T2,0\n")
    traps = secr.read_traps(t)
    with pytest.raises(BadInputError) as ei:
        secr.read_captures(c, traps)
    assert "all-zero capture history" in _one_line(ei.value)
    with pytest.raises(BadInputError, match="all-zero"):
        CaptureHistory(["A", "B"], np.array([[[1, 0, 0, 0]], [[0, 0, 0, 0]]]), traps)
    empty = tmp_path / "empty.csv"
    empty.write_text("ID,occasion,trapID,count\n")
    with pytest.raises(BadInputError, match="no detections"):
        secr.read_captures(empty, traps)


def test_factor_level_at_one_trap_is_fitted(tmp_path: Path) -> None:
    """R secr fits a level at a single trap; so does irbis (no refusal)."""
    t, c = _files(tmp_path)
    traps = secr.read_traps(t)
    ch = secr.read_captures(c, traps)
    mask = make_mask(traps, 3000.0, 500.0)
    fit = secr.fit(ch, mask, model="lambda0~Topo")
    assert "lambda0.TopoSaddle" in fit.names


def test_other_model_errors() -> None:
    traps = Traps(["A", "B"], [(0.0, 0.0), (1000.0, 0.0)])
    ch = CaptureHistory(["x"], np.array([[[1, 1]]]), traps)
    mask = make_mask(traps, 3000.0, 500.0)
    with pytest.raises(BadInputError, match="no covariate 'elev'"):
        secr.fit(ch, mask, model="sigma~elev")
    with pytest.raises(BadInputError, match="unknown parameter 'g0'"):
        secr.fit(ch, mask, model="g0~1", detectfn="HHN")
    with pytest.raises(BadInputError, match="unknown detection function"):
        secr.fit(ch, mask, detectfn="XYZ")
    with pytest.raises(BadInputError, match="not a formula"):
        secr.fit(ch, mask, model="D")
    with pytest.raises(BadInputError, match="conditional likelihood has no density"):
        secr.fit(ch, mask, model="D~cov", likelihood="CL")
    with pytest.raises(BadInputError, match="unknown likelihood"):
        secr.fit(ch, mask, likelihood="partial")
    with pytest.raises(BadInputError, match="more than once"):
        CaptureHistory(["x"], np.array([[[2, 0]]]), traps, detector="proximity")
    with pytest.raises(BadInputError, match="more than one trap"):
        CaptureHistory(["x"], np.array([[[1, 1]]]), traps, detector="multi")


def test_bad_rows_in_traps_and_usage(tmp_path: Path) -> None:
    t = tmp_path / "traps.csv"
    t.write_text("trapID,x,y\nT1,0,0\nT1,5,5\n")
    with pytest.raises(BadInputError, match=r"traps.csv:3: trapID 'T1' appears twice"):
        secr.read_traps(t)
    t.write_text("trapID,x,y\nT1,abc,0\n")
    with pytest.raises(BadInputError, match=r"traps.csv:2: x 'abc' is not a number"):
        secr.read_traps(t)
    t.write_text("trapID,x,y,usage_1,usage_2\nT1,0,0,1,0\nT2,9,9,1,1\n")
    traps = secr.read_traps(t)
    c = tmp_path / "captures.csv"
    c.write_text("ID,occasion,trapID\nA,2,T1\n")
    with pytest.raises(BadInputError, match="usage is 0"):
        secr.read_captures(c, traps)


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    from irbis.cli.stats_cmd import secr_app

    t, c = _files(tmp_path, caps=CAPS + "C,1,T9,1\n")
    res = runner.invoke(secr_app, ["fit", "--traps", str(t), "--captures", str(c), "--json"])
    assert res.exit_code == 2
    assert "unknown trapID 'T9'" in res.output and "Traceback" not in res.output
    t, c = _files(tmp_path)
    m = tmp_path / "mask.csv"
    m.write_text("x,y\n")
    res = runner.invoke(
        secr_app, ["fit", "--traps", str(t), "--captures", str(c), "--mask", str(m)]
    )
    assert res.exit_code == 2 and "no points" in res.output and "Traceback" not in res.output
    res = runner.invoke(
        secr_app,
        ["fit", "--traps", str(t), "--captures", str(c), "--model", "lambda0~Slope", "--json"],
    )
    assert res.exit_code == 2 and "no covariate 'Slope'" in res.output
    assert "Traceback" not in res.output


def test_several_sessions_are_never_pooled(tmp_path: Path) -> None:
    """A Session column with two sessions is refused by the one-session reader, not pooled."""
    t, c = _files(tmp_path, caps="Session,ID,occasion,trapID,count\n"
                  "2019,A,1,T1,1\n2019,A,1,T2,2\n2020,B,1,T3,1\n")  # fmt: skip
    traps = secr.read_traps(t)
    with pytest.raises(BadInputError) as ei:
        secr.read_captures(c, traps)
    msg = _one_line(ei.value)
    assert "2 sessions (2019, 2020)" in msg and "read_session_captures" in msg
    # one session in a Session column is just that session
    c.write_text("Session,ID,occasion,trapID,count\nS1,A,1,T1,1\nS1,B,1,T3,1\n")
    assert secr.read_captures(c, traps).n == 2
    # traps and mask files with several sessions: the same
    t.write_text("Session,trapID,x,y\n1,T1,0,0\n2,T1,0,0\n")
    with pytest.raises(BadInputError, match="2 sessions .*read_session_traps"):
        secr.read_traps(t)
    m = tmp_path / "mask.csv"
    m.write_text("session,x,y\na,0,0\na,500,0\nb,0,0\nb,0,500\n")
    with pytest.raises(BadInputError, match="2 sessions .*read_session_masks"):
        secr.read_mask(m)


def test_unknown_capture_column_is_refused(tmp_path: Path) -> None:
    t, c = _files(tmp_path, caps="ID,occasion,trapID,sex\nA,1,T1,F\n")
    with pytest.raises(BadInputError) as ei:
        secr.read_captures(c, secr.read_traps(t))
    assert "column 'sex' is not read" in _one_line(ei.value)
