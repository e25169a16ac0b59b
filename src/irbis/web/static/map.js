/* Station maps with Leaflet and no tiles: points in their own (projected) coordinates. */
"use strict";

const irbisMap = (() => {
  /* Draw stations (and an optional polygon) into the element `id`.
     With projected x/y, L.CRS.Simple puts metres straight on the screen;
     with only lon/lat and local tiles, the usual web-mercator map is used. */
  function draw(id, stations, opts) {
    opts = opts || {};
    const projected = stations.some((s) => s.x !== null && s.y !== null);
    const useTiles = opts.tiles && !projected;
    const map = L.map(id, {
      crs: useTiles ? L.CRS.EPSG3857 : L.CRS.Simple,
      minZoom: -20, maxZoom: 20, attributionControl: false, zoomSnap: 0.25,
    });
    if (useTiles) L.tileLayer("/tiles/{z}/{x}/{y}.png", { maxZoom: 18 }).addTo(map);
    const pt = (s) => (projected ? [s.y, s.x] : [s.lat, s.lon]);
    const pts = [];
    for (const s of stations) {
      if ((projected && s.x === null) || (!projected && s.lat === null)) continue;
      const ll = pt(s);
      pts.push(ll);
      // A DOM node, never a string: Leaflet puts strings in as HTML, and
      // station names are data anyone with an import could have written.
      const label = document.createElement("span");
      label.className = "station-label";
      label.textContent = `${s.name}${s.generalised ? " (generalised)" : ""}` +
        (s.media !== undefined ? ` · ${s.media} media` : "") +
        (s.sightings !== undefined ? ` · ${s.sightings} sightings` : "");
      L.circleMarker(ll, {
        radius: 7, color: s.generalised ? "#b3261e" : "#2f5d62", weight: 2, fillOpacity: 0.6,
      }).bindTooltip(label, { permanent: stations.length <= 30, direction: "right" }).addTo(map);
    }
    if (opts.polygon && opts.polygon.length) {
      const poly = opts.polygon.map((c) => [c[1], c[0]]);
      L.polygon(poly, { color: "#8a5a00", weight: 2, fillOpacity: 0.15 }).addTo(map);
      pts.push(...poly);
    }
    if (pts.length === 1) map.setView(pts[0], projected ? -2 : 12);
    else if (pts.length) map.fitBounds(L.latLngBounds(pts).pad(0.25));
    else map.setView([0, 0], 0);
    return map;
  }
  return { draw };
})();

(() => {
  const data = document.getElementById("stations-data");
  if (!data || !document.getElementById("map")) return;
  irbisMap.draw("map", JSON.parse(data.textContent), { tiles: irbis.json("map-tiles") });
})();
