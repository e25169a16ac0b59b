"""`irbis demo` builds a project from data it generates itself, and can run again."""

from __future__ import annotations

from irbis.demo.run import run_demo


def test_demo_season_end_to_end(tmp_path):
    first = run_demo(tmp_path / "demo", seed=3, n_stations=4)
    st = first["status"]
    assert st["stations"] == 4 and st["deployments"] == 4
    assert first["ingest"]["new"] == st["media"] > 0
    assert first["ingest"]["rejected"] == 0
    # One camera's clock was reset to 2000 midway: its later files are flagged.
    assert st["flagged"].get("implausible_date", 0) > 0
    assert first["trap_nights"] > 4 * 50
    assert sum(first["independent_records"].values()) > 0

    again = run_demo(tmp_path / "demo", seed=3, n_stations=4)
    assert again["ingest"]["new"] == 0
    assert again["ingest"]["duplicates"] == first["ingest"]["new"]
    assert again["status"]["media"] == st["media"]
