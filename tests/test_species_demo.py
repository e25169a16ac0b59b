"""Must-show of issue 22 on the demo: label the first sequences, train, the rest are proposed
about as well as the training's held-out evaluation said.

The demo season (8 stations) is simulated and ingested; its XMP tags are the
truth. The first half of the labelled sequences keep their labels, the rest
are hidden; the head is trained (no detector run: whole-frame crops without
the info bar) and classifies the hidden ones. Slow: dinov2-s embeds about
230 frames on the CPU.
"""

from __future__ import annotations

import math

import pytest

from .test_species_classifier import registry  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow


def test_first_half_labelled_makes_the_rest_right_at_the_predicted_rate(
    tmp_path,
    registry,  # noqa: F811
) -> None:
    from irbis.demo.run import run_demo
    from irbis.demo.species_check import species_check
    from irbis.store import Project

    run_demo(tmp_path / "demo", n_stations=8, report=False)
    with Project.open(tmp_path / "demo" / "project") as p:
        res = species_check(p, share=0.5, models_root=registry)
    pred, obs = res["predicted"], res["observed"]
    n = res["hidden_sequences"]
    assert n >= 15 and res["labelled_sequences"] >= 15
    # Every hidden sequence got a proposal (the blanks too, counted apart).
    assert res["classify"]["proposed"] >= n
    # The observed rate agrees with the prediction within sampling error: two
    # binomial standard errors of the hidden sequences (the prediction, per crop
    # on held-out encounters, is about as noisy: 2.5 in all).
    se = math.sqrt(
        max(pred["accuracy_by_encounter"] * (1 - pred["accuracy_by_encounter"]), 0.05) / n
    )
    assert abs(obs["accuracy"] - pred["accuracy_by_encounter"]) < 2.5 * se + 0.05, res
    # And it learned: above always saying the commonest hidden species.
    commonest = max(v["n"] for v in res["per_species"].values()) / n
    assert obs["accuracy"] > commonest, res
    lc = res["learning_curve"]
    assert lc["labels_now"] == res["labelled_crops"] and "points" in lc and lc["note"]
    assert lc["labels_needed"] is None or lc["labels_needed"] < 100 * lc["labels_now"]
