/* An individual's page: flank photos, stations with the range polygon, merge. */
"use strict";

(() => {
  const ind = irbis.json("ind-data");
  document.querySelectorAll("canvas[data-media]").forEach((c) => {
    irbisCrops.thumb(c, Number(c.dataset.media), JSON.parse(c.dataset.box))
      .catch((e) => irbis.flash(e.message, "error"));
  });
  if (ind.stations.length) {
    irbisMap.draw("map", ind.stations, { polygon: ind.range ? ind.range.coordinates : null });
  }
  const btn = document.getElementById("merge");
  if (btn) {
    btn.addEventListener("click", async () => {
      const into = Number(document.getElementById("merge-into").value);
      if (!window.confirm("Merge? Sightings of both will show under the other individual.")) return;
      try {
        const r = await irbis.api("POST", `/api/individuals/${btn.dataset.id}/merge`, { into });
        window.location = `/individuals/${r.into}`;
      } catch (e) {
        irbis.flash(e.message, "error");
      }
    });
  }
})();
