"""``irbis export secr`` files read back the way R secr's ``read.traps`` reads them.

The reader below follows secr 4.x ``read.traps`` for a text file (R/read.traps.R):
``read.table(file, row.names = 1, as.is = TRUE)`` (fields split at blanks,
``"``/``'`` quote, ``#`` outside quotes starts a comment, every line the same
number of fields), then the fields after ``x y`` pasted with single blanks,
split at every ``/`` into a matrix (each line must give the same number of
parts), usage read from the part before the ``/`` and covariates from the part
after it with ``read.table`` again (quotes from the first read are gone).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from irbis.core.types import DeploymentRecord, StationRecord
from irbis.exchange.secr_text import export_secr, r_tokens
from irbis.ingest.registry import save_registry
from irbis.store import Project
from irbis.store.schema import IngestBatch, Media, MediaGroup, Observation

T0 = datetime(2024, 3, 1)


class SecrReadError(ValueError):
    pass


def _r_fields(line: str) -> list[str]:
    """R ``scan``/``read.table`` fields of one line (default sep, quote, comment.char)."""
    fields: list[str] = []
    cur: list[str] = []
    quote = None
    in_field = False
    for ch in line:
        if quote:
            if ch == quote:
                quote = None
            else:
                cur.append(ch)
            continue
        if ch in "\"'":
            quote, in_field = ch, True
        elif ch == "#":
            break
        elif ch.isspace():
            if in_field:
                fields.append("".join(cur))
                cur, in_field = [], False
        else:
            cur.append(ch)
            in_field = True
    if quote:
        raise SecrReadError(f"unterminated quote in {line!r}")
    if in_field:
        fields.append("".join(cur))
    return fields


def _read_table(lines: list[str]) -> list[list[str]]:
    rows = [f for f in (_r_fields(x) for x in lines) if f]
    if rows and len({len(r) for r in rows}) != 1:
        raise SecrReadError(f"lines with different numbers of fields: {rows}")
    return rows


def read_traps(path, covnames: list[str]) -> dict[str, dict]:
    """trapID -> {x, y, usage, covariates} as secr would read it, or SecrReadError."""
    rows = _read_table(path.read_text().splitlines())
    ids = [r[0] for r in rows]
    if len(set(ids)) != len(ids):
        raise SecrReadError("duplicate row names")
    temp2 = [" ".join(r[3:]) for r in rows]
    split = [t.split("/") for t in temp2]
    if len({len(p) for p in split}) != 1:
        raise SecrReadError(f"'/' splits lines into different numbers of parts: {split}")
    usage = _read_table([p[0] for p in split])
    out = {}
    covs = _read_table([p[1] for p in split]) if len(split[0]) > 1 else [[] for _ in rows]
    if len(split[0]) > 2:
        raise SecrReadError("more than one '/' on a line")
    for r, u, c in zip(rows, usage, covs, strict=True):
        if covnames and len(c) != len(covnames):
            raise SecrReadError(f"number of covariate names does not match {len(c)} columns")
        out[r[0]] = {
            "x": float(r[1]),
            "y": float(r[2]),
            "usage": [float(v) for v in u],
            "covariates": dict(zip(covnames, c, strict=True)),
        }
    return out


def test_the_reader_fails_where_r_fails(tmp_path):
    f = tmp_path / "traps.txt"
    f.write_text("A 1 2 5 / rock/scree 1\nB 3 4 5 / grass 2\n")
    with pytest.raises(SecrReadError):
        read_traps(f, ["habitat", "n"])
    f.write_text("A 1 2 5 / sp#2 1\nB 3 4 5 / grass 2\n")
    with pytest.raises(SecrReadError):
        read_traps(f, ["habitat", "n"])
    f.write_text('A 1 2 5 / "two words" 1\nB 3 4 5 / grass 2\n')  # quotes gone on the 2nd read
    with pytest.raises(SecrReadError):
        read_traps(f, ["habitat", "n"])
    f.write_text("A 1 2 5 / rock_scree 1\nB 3 4 5 / grass 2\n")
    assert read_traps(f, ["habitat", "n"])["A"]["covariates"] == {"habitat": "rock_scree", "n": "1"}


def test_r_tokens_are_safe_and_one_to_one():
    values = ["rock/scree", "rock_scree", "rock scree", "sp#2", "it's", "", "ok"]
    tok = r_tokens(values)
    assert tok["rock_scree"] == "rock_scree" and tok["ok"] == "ok" and tok[""] == "NA"
    assert len(set(tok.values())) == len(values)
    assert all(not set(t) & set(" /#\"'\\") for t in tok.values())


HABITATS = ["rock/scree", "rock_scree", "alpine meadow #2", "it's steep", "", "cliff"]


def _project(tmp_path) -> Project:
    p = Project.init(tmp_path / "proj")
    stations = [
        StationRecord(
            name=f"S{i}" if i != 2 else "S#2 / upper",
            x=600000.0 + 3000 * i,
            y=4700000.0,
            covariates={"habitat": HABITATS[i], "rgd": 0.5 * i},
        )
        for i in range(len(HABITATS))
    ]
    deps = [
        DeploymentRecord(code=f"D{i}", station=st.name, start=T0, end=T0 + timedelta(days=20))
        for i, st in enumerate(stations)
    ]
    save_registry(p, stations, deps)
    from sqlalchemy import select

    from irbis.store.schema import Deployment

    with p.session() as s, s.begin():
        batch = IngestBatch(source="test", started_utc=T0)
        s.add(batch)
        s.flush()
        dep_ids = {d.code: d.id for d in s.scalars(select(Deployment))}
        for j, (ind, st) in enumerate([("Agnes #1", 0), ("Agnes #1", 2), ("Bold/B", 4)]):
            t = T0 + timedelta(days=2 + j)
            g = MediaGroup(
                deployment_id=dep_ids[f"D{st}"], kind="sequence", start_utc=t, end_utc=t, n_media=1
            )
            s.add(g)
            s.flush()
            m = Media(
                sha256=f"{j:064d}",
                size=1,
                mediatype="image",
                mime="image/jpeg",
                storage="copy",
                stored_path=f"x/{j}",
                file_name=f"{j}.jpg",
                source_relpath=f"{j}.jpg",
                batch_id=batch.id,
                deployment_id=dep_ids[f"D{st}"],
                timestamp_local=t,
                timestamp_utc=t,
                time_flag="",
                sequence_id=g.id,
            )
            s.add(m)
            s.flush()
            s.add(
                Observation(
                    media_id=m.id,
                    species="Panthera uncia",
                    individual=ind,
                    source="human",
                    created_utc=T0,
                )
            )
    return p


def test_covariates_with_slash_hash_blank_and_quote_read_back_as_secr_reads_them(tmp_path):
    p = _project(tmp_path)
    try:
        res = export_secr(p, tmp_path / "out")
    finally:
        p.close()
    traps = read_traps(tmp_path / "out" / "traps.txt", ["habitat", "rgd"])
    assert len(traps) == len(HABITATS)
    ren = res["renamed"]
    back = {v: k for k, v in ren["traps"].items()}
    by_station = {back.get(t, t): row for t, row in traps.items()}
    cov_back = {v: k for k, v in ren["covariates"]["habitat"].items()}
    for i, habitat in enumerate(HABITATS):
        row = by_station[f"S{i}" if i != 2 else "S#2 / upper"]
        written = row["covariates"]["habitat"]
        assert cov_back.get(written, written) == (habitat or "NA"), i
        assert float(row["covariates"]["rgd"]) == pytest.approx(0.5 * i)
        assert row["usage"] == [20.0]
    # Six stations, six distinct habitat categories (the empty one is NA).
    assert len({r["covariates"]["habitat"] for r in traps.values()}) == len(HABITATS)

    # capthist.txt: read.table rules too; its trap IDs are the traps file's.
    capt = _read_table((tmp_path / "out" / "capthist.txt").read_text().splitlines())
    assert all(len(r) == 4 for r in capt) and len(capt) == res["detections"] == 3
    assert {r[3] for r in capt} <= set(traps)
    assert {r[1] for r in capt} == {ren["animals"]["Agnes #1"], ren["animals"]["Bold/B"]}
