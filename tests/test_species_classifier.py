"""Species from the survey's own labels: the head, the crops, training and classify.

The project tests use real photos: a few of camtrapR's species folders
(Borneo, stations A-C: leopard cat PBE, civet VTA, macaque MNE, mouse-deer
TRA, moonrat EGY, one UNID) and a Tajik snow-leopard frame for the info bars.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from irbis.core.errors import BadInputError
from irbis.store import Project
from irbis.store.schema import Media, Observation, ReviewedBox
from irbis.vision.registry import ModelError, install, models_dir, verify
from irbis.vision.species import (
    SpeciesHead,
    classification_metrics,
    fit_head,
    fit_temperature,
    grouped_folds,
    load_species_head,
)

from .conftest import need_data

CAMTRAPR = ("cameratrap", "camtrapR")
TAJIK = ("reid", "snowleopard-tajikistan")

# -- the head (numpy only) ----------------------------------------------------------------


def test_head_learns_separable_classes_and_refuses_unseen_ones() -> None:
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(3, 16)) * 3
    y = np.repeat([0, 1, 2], 30)
    x = centres[y] + rng.normal(size=(90, 16))
    w, b, c = fit_head(x, y, 4, l2=1e-3)  # label 3 never seen
    pred = ((x - c) @ w + b).argmax(1)
    assert (pred == y).mean() > 0.95
    head = SpeciesHead(("a", "b", "c", "d"), w, b, c, threshold=0.9)
    probs = head.predict_proba(x)
    assert np.allclose(probs.sum(1), 1) and probs[:, 3].max() < 1e-3
    # A point between the classes is 'unknown' at a high threshold.
    mid = centres.mean(0, keepdims=True)
    assert head.predict(mid)[0][0] == "unknown"
    with pytest.raises(ValueError, match="this head takes"):
        head.predict_proba(x[:, :5])


def test_temperature_recovers_the_one_that_made_the_labels() -> None:
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(4000, 4)) * 3
    t_true = 2.5
    p = np.exp(logits / t_true)
    p /= p.sum(1, keepdims=True)
    y = np.array([rng.choice(4, p=row) for row in p])
    assert abs(fit_temperature(logits, y) - t_true) < 0.25
    assert fit_temperature(np.zeros((0, 3)), np.zeros(0, dtype=int)) == 1.0


def test_grouped_folds_never_split_a_group_and_cover_everything() -> None:
    groups = ["a"] * 5 + ["b"] * 3 + ["c"] * 3 + ["d"] * 1 + ["e"] * 4
    for n in (None, 2, 3):
        folds = grouped_folds(groups, n)
        allidx = np.sort(np.concatenate(folds))
        assert allidx.tolist() == list(range(len(groups)))
        for f in folds:
            inside = {groups[i] for i in f}
            outside = {groups[i] for i in set(range(len(groups))) - set(f.tolist())}
            assert not inside & outside
    assert len(grouped_folds(groups)) == 5


def test_metrics_by_hand() -> None:
    # true: a a a b b c ; said: a a b b unknown a
    m = classification_metrics([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, -1, 0], ["a", "b", "c"])
    assert m["confusion"] == [[2, 1, 0, 0], [0, 1, 0, 1], [1, 0, 0, 0]]
    assert m["accuracy"] == pytest.approx(3 / 6)
    f1_a = 2 * (2 / 3) * (2 / 3) / (4 / 3)
    f1_b = 2 * 0.5 * 0.5 / 1.0
    assert m["macro_f1"] == pytest.approx((f1_a + f1_b + 0.0) / 3)
    assert m["labels"][-1] == "unknown"


# -- crops without info bars ------------------------------------------------------------


def test_info_bars_are_cut_before_cropping() -> None:
    from irbis.pipeline.species_stage import band_and_box

    img = need_data(*TAJIK, "images", "01__Station04__Camera2__2012-7-22__1-53-20(0).JPG")
    with Image.open(img) as im:
        frame = im.convert("RGB")
    w, h = frame.size
    band, box, px = band_and_box(frame, (0.0, 0.0, 1.0, 1.0))
    top = h - band.size[1]
    assert band.size[0] == w and 0 < top < 0.2 * h  # both bars found, about 3-10% each
    assert box == (0.0, 0.0, 1.0, 1.0) and px == w
    # A box inside the top bar is nothing; one reaching into it is clipped.
    _, inside, _ = band_and_box(frame, (0.2, 0.0, 0.3, 0.01))
    assert inside is None
    _, clipped, _ = band_and_box(frame, (0.2, 0.0, 0.3, 0.5))
    assert clipped is not None and clipped[1] == 0.0 and clipped[3] < 0.5 * h / band.size[1]
    # The band holds no bar text: its first and last rows are not mostly black.
    a = np.asarray(band.convert("L"))
    assert (a[0] <= 45).mean() < 0.5 or (a[-1] <= 45).mean() < 0.5


# -- a real project --------------------------------------------------------------------------

PICK = {
    ("StationA", "PBE"): 3,
    ("StationA", "VTA"): 2,
    ("StationB", "MNE"): 4,
    ("StationB", "PBE"): 3,
    ("StationB", "VTA"): 2,
    ("StationB", "UNID"): 1,
    ("StationC", "TRA"): 4,
    ("StationC", "EGY"): 3,
    ("StationC", "PBE"): 2,
}


def _card(dest: Path, pick: dict[tuple[str, str], int]) -> Path:
    src = need_data(*CAMTRAPR, "pictures", "sample_images_species_dir")
    for (station, species), n in pick.items():
        files = sorted((src / station / species).glob("*.JPG"))[:n]
        (dest / station / species).mkdir(parents=True, exist_ok=True)
        for f in files:
            shutil.copy2(f, dest / station / species / f.name)
    return dest


def _project(root: Path, card: Path) -> Project:
    from irbis.ingest.registry import import_registry
    from irbis.ingest.runner import ingest

    p = Project.init(root)
    import_registry(
        p,
        need_data(*CAMTRAPR, "oracle", "camtraps.csv"),
        date_format="%d/%m/%Y",
        crs="EPSG:32650",
    )
    ingest(p, card, layout="station/species", workers=1)
    return p


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Path:
    """A model folder holding the installed dinov2-s (linked, not copied)."""
    try:
        install("dinov2-s", root=models_dir())
    except ModelError as exc:
        if "could not download" in str(exc) and os.environ.get("CI", "").lower() != "true":
            pytest.skip(f"dinov2-s not installable here: {exc}")
        raise
    root = tmp_path_factory.mktemp("models")
    (root / "dinov2-s").symlink_to(models_dir() / "dinov2-s", target_is_directory=True)
    return root


HIDDEN = ("StationB", "MNE")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, registry: Path) -> dict:
    """camtrapR photos; the labels of the last MNE burst hidden; one 4-pixel box; trained."""
    from irbis.pipeline.species_stage import train_species

    tmp = tmp_path_factory.mktemp("species")
    p = _project(tmp / "p", _card(tmp / "card", PICK))
    now = datetime.now(UTC).replace(tzinfo=None)
    with p.session() as s:
        media = s.scalars(select(Media).where(Media.mediatype == "image").order_by(Media.id)).all()
        mne = [m for m in media if f"/{HIDDEN[1]}/" in m.source_relpath]
        last_seq = max(m.sequence_id for m in mne)
        hidden = [m.id for m in mne if m.sequence_id == last_seq]
        truth = {m.id: m.source_relpath.split("/")[-2] for m in media}
        for o in s.scalars(select(Observation).where(Observation.media_id.in_(hidden))):
            o.retracted_utc, o.retracted_by = now, "test"
        tiny_on = next(m for m in media if "/TRA/" in m.source_relpath)
        s.add(
            ReviewedBox(
                media_id=tiny_on.id,
                category="animal",
                x=0.5,
                y=0.5,
                width=0.04,
                height=0.05,
                created_utc=now,
            )
        )
        s.commit()
    out = train_species(p, models_root=registry)
    p.close()
    return {"root": tmp / "p", "out": out, "hidden": hidden, "truth": truth, "tmp": tmp}


def test_training_summary_holds_held_out_evaluations_and_a_confusion_matrix(trained) -> None:
    out = trained["out"]
    sm = out.summary
    # UNID has one photo: left out with a one-line note; TRA lost one crop to its 4 px box.
    assert "UNID" not in sm["labels"]
    assert any("'UNID' has 1 labelled crop" in n and "\n" not in n for n in out.notes)
    assert any("1 crops of fewer than 12 pixels" in n for n in out.notes)
    assert sm["embedding"]["too_small"] == 1
    # Two MNE photos hidden (one burst); thumbnails: no detector boxes, whole frames.
    assert len(trained["hidden"]) == 2
    assert sm["crops_per_species"] == {"PBE": 8, "VTA": 4, "TRA": 3, "EGY": 3, "MNE": 2}
    assert sm["crop_sources"] == {"frame": 20}
    for split in ("by_encounter", "by_station"):
        ev = sm["evaluation"][split]
        cm = np.asarray(ev["confusion"])
        assert cm.shape == (len(sm["labels"]), len(sm["labels"]) + 1)
        assert cm.sum(1).tolist() == [sm["crops_per_species"][lab] for lab in sm["labels"]]
        assert ev["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
        assert 0 <= ev["at_threshold"]["coverage"] <= 1
    assert sm["evaluation"]["by_station"]["folds"] == 3
    # MNE and EGY live at one station each: held out, they cannot be learned.
    assert sm["evaluation"]["by_station"]["species_not_in_training_fold"] >= 4
    assert 0.05 <= sm["temperature"] <= 20
    # How many more labels: asked for, answered or said to be unanswerable.
    lc = sm["learning_curve"]
    assert lc["target_accuracy"] == 0.9 and lc["labels_now"] == 20 and lc["note"]


def test_model_is_installed_verified_and_the_projects_model(trained, registry: Path) -> None:
    out = trained["out"]
    model = verify(out.name, registry)
    assert model.kind == "species" and model.meta["parent"]["name"] == "dinov2-s"
    head = load_species_head(out.name, registry)
    assert head.labels == tuple(out.summary["labels"])
    assert head.temperature == pytest.approx(out.summary["temperature"])
    settings = json.loads((trained["root"] / "irbis.json").read_text())
    assert settings["extra"]["species_model"] == out.name
    # A damaged copy is refused in one line.
    other = trained["tmp"] / "other-models"
    shutil.copytree(model.root, other / out.name)
    (other / out.name / "head.npz").write_bytes(b"broken")
    with pytest.raises(ModelError) as exc:
        load_species_head(out.name, other)
    assert "sha256" in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(ModelError, match="not a species classifier"):
        load_species_head("dinov2-s", registry)


def test_classify_proposes_for_unlabelled_sequences_only_and_exports_as_machine(
    trained, registry: Path
) -> None:
    from irbis.exchange.camtrapdp_export import export_camtrapdp
    from irbis.pipeline.species_stage import run_classify

    out = trained["out"]
    with Project.open(trained["root"]) as p:
        res = run_classify(p, models_root=registry)
        assert (res.proposed, res.already, res.blank) == (1, 0, 0)
        assert res.reviewed == res.sequences - 1
        # The hidden photos were never embedded for training: both are embedded now.
        assert res.crops["embedded"] == 2 and res.crops["cached"] == 0
        with p.session() as s:
            rows = s.scalars(
                select(Observation).where(
                    Observation.source == f"model:{out.name}",
                    Observation.retracted_utc.is_(None),
                )
            ).all()
        assert sorted(o.media_id for o in rows) == sorted(trained["hidden"])
        head = load_species_head(out.name, registry)
        for o in rows:
            assert 0 < o.probability <= 1
            top = o.extra["top"]
            assert top[0][1] == pytest.approx(o.probability, abs=1e-4)
            assert o.species == (top[0][0] if o.probability >= head.threshold else None)
            assert o.by == f"{out.name} {out.version}"
        again = run_classify(p, models_root=registry)
        assert (again.proposed, again.already) == (0, 1)
        pkg = export_camtrapdp(p, trained["tmp"] / "dp", public=False)
    with open(trained["tmp"] / "dp" / "observations.csv", newline="") as fh:
        machine = [
            r
            for r in csv.DictReader(fh)
            if r["classificationMethod"] == "machine" and r["classifiedBy"].startswith(out.name)
        ]
    assert pkg.validation.valid
    assert len(machine) == 2
    assert all(0 < float(r["classificationProbability"]) <= 1 for r in machine)


def test_no_labels_one_species_and_no_model_are_one_line_errors(tmp_path, registry) -> None:
    from irbis.pipeline.species_stage import run_classify, train_species

    with Project.init(tmp_path / "empty") as p:
        with pytest.raises(BadInputError, match="no reviewed species labels") as exc:
            train_species(p, models_root=registry)
        assert "\n" not in str(exc.value)
        with pytest.raises(BadInputError, match="no species model for this project"):
            run_classify(p, models_root=registry)
    card = _card(tmp_path / "card", {("StationC", "TRA"): 2})
    p = _project(tmp_path / "one", card)
    try:
        with pytest.raises(BadInputError, match="at least two species") as exc:
            train_species(p, models_root=registry)
        assert "TRA (2)" in str(exc.value) and "\n" not in str(exc.value)
    finally:
        p.close()


def test_a_sequence_of_few_pixel_crops_is_named_not_proposed(
    trained, registry: Path, tmp_path, monkeypatch
) -> None:
    """Every photo of an unlabelled sequence boxed at 4 pixels: no proposal, one line saying so."""
    from typer.testing import CliRunner

    from irbis.cli.app import app as cli

    root = tmp_path / "copy"
    shutil.copytree(trained["root"], root)
    now = datetime.now(UTC).replace(tzinfo=None)
    with Project.open(root) as p, p.session() as s:
        egy = s.scalars(
            select(Media).where(Media.source_relpath.like("%/EGY/%")).order_by(Media.id)
        ).first()
        tiny = s.scalars(select(Media.id).where(Media.sequence_id == egy.sequence_id)).all()
        for o in s.scalars(select(Observation).where(Observation.media_id.in_(tiny))):
            o.retracted_utc, o.retracted_by = now, "test"
        for mid in tiny:
            s.add(
                ReviewedBox(
                    media_id=mid,
                    category="animal",
                    x=0.5,
                    y=0.5,
                    width=0.03,
                    height=0.03,
                    created_utc=now,
                )
            )
        s.commit()
    monkeypatch.setenv("IRBIS_MODELS", str(registry))
    res = CliRunner().invoke(cli, ["classify", str(root), "--queue", "5"])
    assert res.exit_code == 0, res.output
    assert "1 sequences had no usable crop (too small or unreadable)" in res.output
    # The hidden MNE burst is proposed (now or by an earlier test) and queued; the tiny one is not.
    queued = [ln for ln in res.output.splitlines() if ln.strip().startswith("sequence ")]
    assert len(queued) == 1
    with Project.open(root) as p, p.session() as s:
        assert (
            s.scalar(
                select(Observation.id).where(
                    Observation.media_id.in_(tiny), Observation.source.like("model:%")
                )
            )
            is None
        )
