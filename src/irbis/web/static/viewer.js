/* The sequence viewer: frames with detection boxes, zoom, stepping, keyboard labelling. */
"use strict";

(() => {
  let seq = irbis.json("seq-data");
  const filters = irbis.json("seq-filters") || {};
  const qs = new URLSearchParams(filters).toString();
  let index = Math.max(0, seq.media.findIndex((m) => m.id === seq.best_media_id));
  let zoomed = false;

  const img = document.getElementById("frame");
  const svg = document.getElementById("boxes");
  const stage = document.getElementById("stage");

  function el(tag, attrs, text) {
    const e = document.createElementNS(tag === "svg" || tag === "rect" || tag === "text"
      ? "http://www.w3.org/2000/svg" : "http://www.w3.org/1999/xhtml", tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function drawBoxes(m) {
    svg.innerHTML = "";
    svg.setAttribute("viewBox", "0 0 1 1");
    svg.setAttribute("preserveAspectRatio", "none");
    if (!document.getElementById("show-boxes").checked) return;
    for (const b of m.boxes) {
      if (!b.main && m.boxes.some((o) => o.main)) continue;
      svg.appendChild(el("rect", {
        x: b.x, y: b.y, width: b.width, height: b.height,
        class: `box c-${b.category}`, "vector-effect": "non-scaling-stroke",
      }));
    }
  }

  function showFrame() {
    const m = seq.media[index];
    if (!m) return;
    img.src = m.mediatype === "video" ? m.thumb_url + "?size=640" : m.url;
    img.alt = m.file_name;
    drawBoxes(m);
    const boxes = m.boxes.filter((b) => b.main || !m.boxes.some((o) => o.main));
    document.getElementById("frame-info").textContent =
      `${index + 1} / ${seq.media.length} · ${m.file_name} · ${(m.timestamp_local || "").replace("T", " ")}` +
      (boxes.length ? ` · ${boxes.map((b) => `${b.category} ${b.score.toFixed(2)}`).join(", ")}` : "");
    document.querySelectorAll("#strip img").forEach((t, i) => t.classList.toggle("on", i === index));
  }

  function renderStrip() {
    const strip = document.getElementById("strip");
    strip.innerHTML = "";
    seq.media.forEach((m, i) => {
      const t = el("img", { src: m.thumb_url + "?size=160", alt: m.file_name, title: m.file_name });
      t.addEventListener("click", () => { index = i; showFrame(); });
      strip.appendChild(t);
    });
  }

  function renderLabels() {
    const box = document.getElementById("current-labels");
    box.innerHTML = "";
    if (!seq.labels.length) box.textContent = "no label yet";
    for (const l of seq.labels) {
      const s = el("span", { class: `label p-${l.provenance}` },
        (l.species || l.type) + (l.count > 1 ? ` ×${l.count}` : "") + ` — ${l.provenance}${l.by ? " (" + l.by + ")" : ""}`);
      box.appendChild(s);
    }
    document.getElementById("reviewed-badge").textContent = seq.reviewed ? "reviewed" : "not reviewed";
    const body = document.querySelector("#provenance tbody");
    body.innerHTML = "";
    const rows = [];
    for (const m of seq.media) for (const o of m.observations) rows.push([m, o]);
    rows.sort((a, b) => b[1].id - a[1].id);
    for (const [m, o] of rows) {
      const tr = el("tr", { class: o.current ? "" : "retracted" });
      const cells = [m.file_name, (o.species || o.type) + (o.count ? ` ×${o.count}` : ""),
        `${o.provenance} (${o.source})`, o.by || "", (o.created_utc || "").replace("T", " ").slice(0, 19),
        o.current ? "current" : `retracted by ${o.retracted_by || "?"}`];
      for (const c of cells) tr.appendChild(el("td", {}, c));
      body.appendChild(tr);
    }
  }

  async function reload() {
    seq = await irbis.api("GET", `/api/sequences/${seq.id}${qs ? "?" + qs : ""}`);
    renderLabels();
  }

  async function label(lab) {
    try {
      await irbis.api("POST", `/api/sequences/${seq.id}/label`,
        { ...lab, versions: irbis.versionsOf(seq.media) });
      await reload();
      irbis.flash(`labelled: ${lab.blank ? "blank" : lab.species}`);
    } catch (e) {
      irbis.flash(e.message, "error");
      if (e.status === 409) await reload();
    }
  }

  async function undo() {
    try {
      await irbis.api("POST", `/api/sequences/${seq.id}/undo`, { versions: irbis.versionsOf(seq.media) });
      await reload();
      irbis.flash("undone");
    } catch (e) {
      irbis.flash(e.message, "error");
      if (e.status === 409) await reload();
    }
  }

  function go(which) {
    const id = seq.neighbours && seq.neighbours[which];
    if (id) window.location = `/sequences/${id}${qs ? "?" + qs : ""}`;
    else irbis.flash(which === "next" ? "last sequence of this filter" : "first sequence of this filter");
  }

  function step(d) {
    index = (index + d + seq.media.length) % seq.media.length;
    showFrame();
  }

  function zoom(ev) {
    zoomed = !zoomed;
    stage.classList.toggle("zoomed", zoomed);
    if (ev && ev.offsetX !== undefined && zoomed) {
      stage.style.setProperty("--ox", `${(100 * ev.offsetX) / stage.clientWidth}%`);
      stage.style.setProperty("--oy", `${(100 * ev.offsetY) / stage.clientHeight}%`);
    }
  }

  document.getElementById("prev-frame").addEventListener("click", () => step(-1));
  document.getElementById("next-frame").addEventListener("click", () => step(1));
  document.getElementById("zoom").addEventListener("click", () => zoom());
  document.getElementById("show-boxes").addEventListener("change", showFrame);
  stage.addEventListener("dblclick", zoom);
  stage.addEventListener("mousemove", (ev) => {
    if (!zoomed) return;
    const r = stage.getBoundingClientRect();
    stage.style.setProperty("--ox", `${(100 * (ev.clientX - r.left)) / r.width}%`);
    stage.style.setProperty("--oy", `${(100 * (ev.clientY - r.top)) / r.height}%`);
  });

  document.addEventListener("keydown", (ev) => {
    if (irbis.typing(ev) || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const k = ev.key;
    const lab = irbis.labelFromKey(k);
    if (lab) { ev.preventDefault(); label(lab); return; }
    if (k === "n" || k === "ArrowRight") { ev.preventDefault(); go("next"); }
    else if (k === "p" || k === "ArrowLeft") { ev.preventDefault(); go("previous"); }
    else if (k === "." ) step(1);
    else if (k === ",") step(-1);
    else if (k === "z") zoom();
    else if (k === "u") undo();
    else if (k === "c") irbis.askCount();
    else if (k === "?") document.getElementById("hotkeys").classList.toggle("hidden");
  });

  renderStrip();
  showFrame();
  renderLabels();
})();
