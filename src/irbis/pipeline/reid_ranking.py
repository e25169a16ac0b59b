"""The project's survey-tuned ranking, as the identify stage uses it.

``irbis models train reid`` installs a pair model in the project's settings
(``irbis.json``, key :data:`SETTING`) only where it ranked the project's own
held-out cats better than the untrained ranking
(:mod:`irbis.pipeline.train_reid`). The identify stage asks
:meth:`TunedRanking.load`; without an installed model it gets ``None`` and
keeps the untrained order.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

from sqlalchemy import select

from irbis.reid import Catalogue
from irbis.reid.encounter import EncounterResult
from irbis.reid.ranking import PairModel, rerank_encounter
from irbis.store import Project
from irbis.store.schema import Annotation, Deployment, Media

__all__ = ["SETTING", "TunedRanking"]

#: Key of the installed ranking in the project's settings.
SETTING = "reid_ranking"


class TunedRanking:
    """An installed pair model bound to the catalogue it re-ranks against.

    Parameters
    ----------
    model:
        The pair model.
    catalogue:
        The identify stage's catalogue (its encounters are the gallery).
    project:
        Where the stations of query annotations are looked up.
    """

    def __init__(
        self, model: PairModel, catalogue: Catalogue, project: Project | None = None
    ) -> None:
        self.model = model
        self.catalogue = catalogue
        self.project = project
        votes: dict[str, Counter] = defaultdict(Counter)
        self._station: dict[str, str | None] = {}
        for inds in catalogue.individuals().items():
            for aid in inds[1]:
                ann = catalogue.annotation(aid)
                key = self.encounter_of(aid)
                votes[key][inds[0]] += 1
                self._station.setdefault(key, ann.station)
        self._individual = {k: c.most_common(1)[0][0] for k, c in votes.items()}
        self._gallery = sorted(self._individual)

    @classmethod
    def load(cls, project: Project, catalogue: Catalogue) -> TunedRanking | None:
        """The project's installed ranking, or ``None`` where none is installed."""
        saved = project.settings.extra.get(SETTING)
        if not saved:
            return None
        return cls(PairModel.from_dict(saved["model"]), catalogue, project)

    def encounter_of(self, ann_id: str) -> str:
        """Gallery encounter key of a catalogue annotation."""
        ann = self.catalogue.annotation(ann_id)
        return ann.encounter or f"~ann:{ann.id}"

    def station_of(self, annotation_ids: Sequence[int | str]) -> str | None:
        """Station of the first of ``annotation_ids`` (as the identify stage keys stations)."""
        if self.project is None or not annotation_ids:
            return None
        with self.project.session() as s:
            station = s.scalar(
                select(Deployment.station_id)
                .join(Media, Media.deployment_id == Deployment.id)
                .join(Annotation, Annotation.media_id == Media.id)
                .where(Annotation.id == int(annotation_ids[0]))
            )
        return str(station) if station is not None else None

    def apply(self, er: EncounterResult, annotation_ids: Sequence[int | str]) -> EncounterResult:
        """``er`` re-ranked (:func:`irbis.reid.ranking.rerank_encounter`).

        Parameters
        ----------
        er:
            The encounter's untrained answer.
        annotation_ids:
            The encounter's annotations (their station is a feature).
        """
        station = self.station_of(annotation_ids)
        return rerank_encounter(
            er,
            self.model,
            self.encounter_of,
            self._gallery,
            self._individual,
            station,
            self._station,
        )
