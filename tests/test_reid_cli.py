"""``irbis reid evaluate`` on a small synthetic labelled set."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
from typer.testing import CliRunner

from irbis.cli.reid_cmd import reid_app

from .test_reid_synthetic import frame, pattern


def _dataset(root: Path, roles: bool = False) -> Path:
    lines = ["path,individual_id,side,encounter" + (",role" if roles else "")]
    for k in range(3):
        for e in range(2):
            name = f"c{k}_e{e}.png"
            cv2.imwrite(str(root / name), frame(pattern(40 + k), 7 * k + e))
            role = ("," + ("query" if e == 1 else "gallery")) if roles else ""
            lines.append(f"{name},Cat{k},,enc{k}{e}{role}")
    # An individual seen in one encounter only: an open-set query.
    cv2.imwrite(str(root / "lone.png"), frame(pattern(99), 3))
    lines.append("lone.png,Lone,,encX" + (",query" if roles else ""))
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root / "labels.csv"


def test_evaluate_json(tmp_path: Path) -> None:
    labels = _dataset(tmp_path)
    r = CliRunner().invoke(
        reid_app, ["evaluate", "--images", str(tmp_path), "--labels", str(labels), "--json"]
    )
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    for key in ("top1", "top5", "mAP", "ms_per_query", "pair_precision", "pair_recall"):
        assert key in doc
    assert doc["top1"] == 1.0 and doc["mAP"] == 1.0
    assert doc["pair_precision"] == 1.0 and doc["pair_recall"] == 1.0
    assert doc["open_set_queries"] == 1 and doc["open_set_new_rate"] == 1.0
    assert doc["closed_set_queries"] == 6
    # Honest figures: per individual, their mean, and what naming the most
    # frequent individual would score (here no individual dominates).
    assert doc["macro_top1"] == 1.0
    assert set(doc["per_individual"]) == {"Cat0", "Cat1", "Cat2"}
    assert all(v["queries"] == 2 for v in doc["per_individual"].values())
    assert 0.0 <= doc["majority_rate"] <= 0.5
    # Bursts of one frame each: pooling changes nothing.
    assert doc["burst_pooled_top1"] == doc["top1"] and doc["burst_pooled_top5"] == doc["top5"]
    table = CliRunner().invoke(
        reid_app, ["evaluate", "--images", str(tmp_path), "--labels", str(labels)]
    )
    assert table.exit_code == 0 and "burst_pooled_top1" in table.stdout


def test_evaluate_roles_and_baseline(tmp_path: Path) -> None:
    labels = _dataset(tmp_path, roles=True)
    args = ["evaluate", "--images", str(tmp_path), "--labels", str(labels), "--json"]
    r = CliRunner().invoke(reid_app, [*args, "--method", "baseline"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["queries"] == 4 and doc["closed_set_queries"] == 3 and doc["top1"] == 1.0


def test_evaluate_bad_labels(tmp_path: Path) -> None:
    (tmp_path / "l.csv").write_text("file,who\n")
    r = CliRunner().invoke(
        reid_app, ["evaluate", "--images", str(tmp_path), "--labels", str(tmp_path / "l.csv")]
    )
    assert r.exit_code == 2 and "path,individual_id" in r.output


def test_evaluate_with_the_wrong_images_folder_says_so(tmp_path: Path) -> None:
    # Paths relative to tmp_path, --images one level too deep: nothing readable
    # must be an error naming the fix, not a table of zeros.
    labels = _dataset(tmp_path)
    (tmp_path / "sub").mkdir()
    args = ["evaluate", "--images", str(tmp_path / "sub"), "--labels", str(labels), "--json"]
    r = CliRunner().invoke(reid_app, args)
    assert r.exit_code == 2
    assert "none of the 7 images could be read" in r.output and "--images" in r.output


def test_station_protocol_never_matches_a_query_against_its_own_station(tmp_path: Path) -> None:
    # Cat0 and Cat2 were each seen at two stations, Cat1 twice at one station.
    stations = {("Cat0", 0): "A", ("Cat0", 1): "B", ("Cat1", 0): "C", ("Cat1", 1): "C"}
    stations |= {("Cat2", 0): "D", ("Cat2", 1): "E"}
    lines = ["path,individual_id,side,encounter,station,camera"]
    for k in range(3):
        for e in range(2):
            name = f"c{k}_e{e}.png"
            cv2.imwrite(str(tmp_path / name), frame(pattern(40 + k), 7 * k + e))
            lines.append(f"{name},Cat{k},,enc{k}{e},{stations[f'Cat{k}', e]},1")
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    args = ["evaluate", "--images", str(tmp_path), "--labels", str(tmp_path / "labels.csv")]
    docs = {}
    for protocol in ("encounter", "station"):
        r = CliRunner().invoke(reid_app, [*args, "--json", "--protocol", protocol])
        assert r.exit_code == 0, r.output
        docs[protocol] = json.loads(r.stdout)
    assert docs["encounter"]["closed_set_queries"] == 6 and docs["encounter"]["top1"] == 1.0
    station = docs["station"]
    # Cat1's only other photo is at its own station: no right answer left.
    assert station["closed_set_queries"] == 4 and station["open_set_queries"] == 2
    assert station["top1"] == 1.0 and set(station["per_individual"]) == {"Cat0", "Cat2"}
    # Its same-station pair is not counted as clustering evidence either.
    assert docs["encounter"]["pair_recall"] == 1.0 and station["pair_recall"] == 1.0
    bad = CliRunner().invoke(reid_app, [*args, "--protocol", "scene"])
    assert bad.exit_code == 2 and "encounter, station, image" in bad.output
