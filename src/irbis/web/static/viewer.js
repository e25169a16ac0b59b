/* The sequence viewer: frames with detection boxes, zoom, stepping, keyboard labelling,
   and the boxes people draw (mouse and keyboard) beside the machine's. */
"use strict";

(() => {
  let seq = irbis.json("seq-data");
  const filters = irbis.json("seq-filters") || {};
  const view = irbis.json("view-data") || {};
  const qs = new URLSearchParams(filters).toString();
  let index = Math.max(0, seq.media.findIndex((m) => m.id === (view.start_media_id || seq.best_media_id)));
  let zoomed = false;

  const img = document.getElementById("frame");
  const svg = document.getElementById("boxes");
  const stage = document.getElementById("stage");

  // Box editing state. sel: {kind: "rev" | "machine" | "new", id}; draft: the selected
  // box's unsaved place {x, y, width, height}; drag: a mouse gesture in progress.
  let sel = null;
  let draft = null;
  let drag = null;
  let saveTimer = null;
  let chain = Promise.resolve();
  const STEP = 0.01;
  const MIN = 0.005;

  function el(tag, attrs, text) {
    const e = document.createElementNS(tag === "svg" || tag === "rect" || tag === "text"
      ? "http://www.w3.org/2000/svg" : "http://www.w3.org/1999/xhtml", tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  const media = () => seq.media[index];
  // Boxes are edited on photos, by reviewers, while they are shown.
  const editable = () => Boolean(view.can_edit) && media() && media().mediatype === "image" &&
    document.getElementById("show-boxes").checked;
  const reviewed = (m) => (m.reviewed_boxes || []).filter((b) => b.current && b.frame === 0);
  const seenOf = (m) => reviewed(m).map((b) => b.id);
  const machineBoxes = (m) => m.boxes.filter((b) => b.frame === 0 && (b.main || !m.boxes.some((o) => o.main)));
  const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));

  function selectedBox() {
    const m = media();
    if (!sel || !m) return null;
    if (sel.kind === "new") return draft;
    if (sel.kind === "rev") return draft || reviewed(m).find((b) => b.id === sel.id && b.x !== null) || null;
    return machineBoxes(m).find((b) => b.id === sel.id) || null;
  }

  function drawBoxes(m) {
    svg.innerHTML = "";
    svg.setAttribute("viewBox", "0 0 1 1");
    svg.setAttribute("preserveAspectRatio", "none");
    svg.classList.toggle("editable", editable());
    if (!document.getElementById("show-boxes").checked) return;
    for (const b of machineBoxes(m)) {
      const on = sel && sel.kind === "machine" && sel.id === b.id;
      svg.appendChild(el("rect", {
        x: b.x, y: b.y, width: b.width, height: b.height, "data-kind": "machine", "data-id": b.id,
        class: `box machine c-${b.category}${on ? " sel" : ""}`, "vector-effect": "non-scaling-stroke",
      }));
    }
    for (const b of reviewed(m)) {
      if (b.x === null) continue;
      const on = sel && sel.kind === "rev" && sel.id === b.id;
      const r = on && draft ? draft : b;
      svg.appendChild(el("rect", {
        x: r.x, y: r.y, width: r.width, height: r.height, "data-kind": "rev", "data-id": b.id,
        class: `rbox c-${b.category}${on ? " sel" : ""}${on && draft ? " draft" : ""}`,
        "vector-effect": "non-scaling-stroke",
      }));
    }
    if (sel && sel.kind === "new" && draft) {
      svg.appendChild(el("rect", {
        x: draft.x, y: draft.y, width: draft.width, height: draft.height, "data-kind": "new",
        class: "rbox sel draft", "vector-effect": "non-scaling-stroke",
      }));
    }
    const b = sel && sel.kind !== "machine" ? selectedBox() : null;
    if (b && editable()) {
      const r = svg.getBoundingClientRect();
      const hw = r.width ? 9 / r.width : 0.01;
      const hh = r.height ? 9 / r.height : 0.01;
      const corners = { nw: [b.x, b.y], ne: [b.x + b.width, b.y], sw: [b.x, b.y + b.height],
        se: [b.x + b.width, b.y + b.height] };
      for (const [name, [cx, cy]] of Object.entries(corners)) {
        svg.appendChild(el("rect", {
          x: cx - hw / 2, y: cy - hh / 2, width: hw, height: hh, class: `handle ${name}`,
          "data-corner": name, "vector-effect": "non-scaling-stroke",
        }));
      }
    }
  }

  function describeReview(m) {
    const rows = reviewed(m);
    if (!rows.length) return "people: not reviewed";
    const who = [...new Set(rows.map((r) => r.by))].join(", ");
    const boxes = rows.filter((r) => r.kind === "box");
    if (boxes.length) return `people: ${boxes.length} box${boxes.length > 1 ? "es" : ""} (${who})`;
    if (rows.some((r) => r.kind === "no_animal")) return `people: no animal here (${who})`;
    return `people: animal here, no box (${who})`;
  }

  function showFrame() {
    const m = media();
    if (!m) return;
    const src = m.mediatype === "video" ? m.thumb_url + "?size=640" : m.url;
    if (img.getAttribute("src") !== src) img.src = src;
    img.alt = m.file_name;
    drawBoxes(m);
    const boxes = machineBoxes(m);
    document.getElementById("frame-info").textContent =
      `${index + 1} / ${seq.media.length} · ${m.file_name} · ${(m.timestamp_local || "").replace("T", " ")}` +
      (boxes.length ? ` · ${boxes.map((b) => `${b.category} ${b.score.toFixed(2)}`).join(", ")}` : "");
    document.getElementById("frame-review").textContent = describeReview(m);
    document.querySelectorAll("#strip img").forEach((t, i) => t.classList.toggle("on", i === index));
  }

  function renderStrip() {
    const strip = document.getElementById("strip");
    strip.innerHTML = "";
    seq.media.forEach((m, i) => {
      const t = el("img", { src: m.thumb_url + "?size=160", alt: m.file_name, title: m.file_name });
      t.addEventListener("click", () => toFrame(i));
      strip.appendChild(t);
    });
  }

  function renderProposal() {
    const p = seq.proposal;
    const line = document.getElementById("proposal");
    if (!line) return;
    line.hidden = !p;
    if (!p) return;
    const prob = p.probability !== null && p.probability !== undefined ? ` ${p.probability.toFixed(2)}` : "";
    line.querySelector(".proposal").textContent = p.species
      ? `proposed: ${p.species}${prob} (${p.model})` : `classifier unsure (${p.best}?${prob})`;
    const taken = p.species && seq.labels.some((l) => l.provenance === "human" && l.species === p.species);
    line.classList.toggle("accepted", Boolean(taken));
    document.getElementById("accept-proposal").disabled = !p.species;
  }

  /* y: the classifier's proposal becomes the person's label (machine-proposed,
     person-confirmed; u undoes it), as p does in the grid. */
  function acceptProposal() {
    const p = seq.proposal;
    if (!p || !p.species) { irbis.flash("no species proposal here to accept", "error"); return; }
    return write(() => irbis.api("POST", `/api/sequences/${seq.id}/accept`,
      { versions: irbis.versionsOf(seq.media), species: p.species }),
    () => `accepted the proposal: ${p.species}`);
  }

  function renderLabels() {
    renderProposal();
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
      const details = [o.sex, o.life_stage, o.behavior, o.comments].filter(Boolean).join(" · ");
      const cells = [m.file_name, (o.species || o.type) + (o.count ? ` ×${o.count}` : ""), details,
        `${o.provenance} (${o.source})`, o.by || "", (o.created_utc || "").replace("T", " ").slice(0, 19),
        o.current ? "current" : `retracted by ${o.retracted_by || "?"}`];
      for (const c of cells) tr.appendChild(el("td", {}, c));
      body.appendChild(tr);
    }
  }

  function renderBoxHistory() {
    const body = document.querySelector("#box-history tbody");
    body.innerHTML = "";
    const rows = [];
    for (const m of seq.media) for (const b of m.reviewed_boxes || []) rows.push([m, b]);
    rows.sort((a, b) => b[1].id - a[1].id);
    const pct = (v) => `${Math.round(v * 100)}%`;
    for (const [m, b] of rows) {
      const what = b.kind === "box"
        ? `${b.category} box at ${pct(b.x)}, ${pct(b.y)}, ${pct(b.width)} × ${pct(b.height)}` +
          (b.detection_id ? " (accepted machine box)" : "")
        : b.kind === "no_animal" ? "no animal here" : `${b.category} here, no box`;
      const tr = el("tr", { class: b.current ? "" : "retracted", "data-id": b.id });
      const cells = [m.file_name, what, b.by || "", (b.created_utc || "").replace("T", " ").slice(0, 19),
        b.current ? "current" : `retracted by ${b.retracted_by || "?"} ${(b.retracted_utc || "").replace("T", " ").slice(0, 19)}`];
      for (const c of cells) tr.appendChild(el("td", {}, c));
      body.appendChild(tr);
    }
    const found = new Set();
    for (const m of seq.media) for (const b of reviewed(m)) if (b.category !== "blank") found.add(b.category);
    const state = document.getElementById("state");  // "set aside" / "too small": as loaded
    if (state) state.hidden = found.size > 0;
    const note = document.getElementById("set-aside");
    if (note) {
      note.hidden = !((seq.verdict === "blank" || seq.verdict === "unjudged") && found.size);
      note.textContent = `No box from the detector, but a person saw ${[...found].join(", ") || "an animal"} here: it is not set aside as blank.`;
    }
  }

  async function reload() {
    seq = await irbis.api("GET", `/api/sequences/${seq.id}${qs ? "?" + qs : ""}`);
    renderLabels();
    renderDetails(false);
    renderBoxHistory();
    showFrame();
  }

  /* Label writes (keys, panel clicks, details, undo) run one after another, each with
     the versions the previous one produced: pressing 3 then 4 stores 4, never a 409
     against one's own write. After a real conflict (someone else wrote), the writes
     asked for before it was shown are dropped, not sent over the other person's label. */
  let writes = Promise.resolve();
  let epoch = 0;

  function takeVersions(res) {
    if (!res || !res.versions) return;
    for (const m of seq.media) {
      const v = res.versions[m.id] !== undefined ? res.versions[m.id] : res.versions[String(m.id)];
      if (v !== undefined) m.review_version = Number(v);
    }
  }

  function write(fn, done) {
    const mine = epoch;
    writes = writes.then(async () => {
      if (mine !== epoch) return;  // asked for before a conflict was shown
      try {
        const res = await fn();
        takeVersions(res);
        await reload();
        irbis.flash(done(res));
      } catch (e) {
        irbis.flash(e.message, "error");
        if (e.status === 409) {
          // Keys pressed until the other person's label is on screen were meant for
          // what the page showed before: dropped (each write checks its epoch).
          try { await reload(); } finally { epoch += 1; }
        }
      }
    });
    return writes;
  }

  function label(lab) {
    return write(() => irbis.api("POST", `/api/sequences/${seq.id}/label`,
      { ...lab, versions: irbis.versionsOf(seq.media) }),
    () => `labelled: ${lab.blank ? "blank" : lab.species}`);
  }

  function undo() {
    return write(() => irbis.api("POST", `/api/sequences/${seq.id}/undo`,
      { versions: irbis.versionsOf(seq.media) }), () => "undone");
  }

  // ------------------------------------------------------------------ observation details

  const form = document.getElementById("obs-form");
  let formDirty = false;
  const FIELDS = ["species", "count", "sex", "life_stage", "behavior", "comments"];

  function detailRows() {
    // The person's current observations of the first file that has some (every file of
    // the sequence gets the same rows), else the current labels, else one empty row.
    for (const m of seq.media) {
      const cur = m.observations.filter((o) => o.current && o.source === "human" && o.type !== "blank");
      if (cur.length) return cur;
      if (m.observations.some((o) => o.current && o.source === "human")) break;
    }
    const labs = seq.labels.filter((l) => l.species);
    return labs.length ? labs.map((l) => ({ species: l.species, count: l.count })) : [{}];
  }

  function addDetailRow(o) {
    const body = form.querySelector("tbody");
    const tr = el("tr", { class: "obs-row" });
    const opt = (values, cur) => ["", ...values].map((v) =>
      `<option value="${v}"${(cur || "") === v ? " selected" : ""}>${v || "—"}</option>`).join("");
    tr.innerHTML =
      '<td><input name="species" list="species-names" required size="14"></td>' +
      '<td><input name="count" type="number" min="1" max="1000" step="1" style="width:4.5em"></td>' +
      `<td><select name="sex">${opt(["female", "male"], o.sex)}</select></td>` +
      `<td><select name="life_stage">${opt(["adult", "subadult", "juvenile"], o.life_stage)}</select></td>` +
      '<td><input name="behavior" maxlength="200" size="12"></td>' +
      '<td><input name="comments" maxlength="2000" size="16"></td>' +
      '<td><button type="button" class="obs-remove" title="remove this observation">×</button></td>';
    tr.querySelector('[name="species"]').value = o.species || "";
    tr.querySelector('[name="count"]').value = o.count || 1;
    tr.querySelector('[name="behavior"]').value = o.behavior || "";
    tr.querySelector('[name="comments"]').value = o.comments || "";
    tr.querySelector(".obs-remove").addEventListener("click", () => {
      tr.remove();
      formDirty = true;
      if (!body.children.length) addDetailRow({});
    });
    body.appendChild(tr);
  }

  function renderDetails(force) {
    if (!form || (formDirty && !force)) return;
    form.querySelector("tbody").innerHTML = "";
    for (const o of detailRows()) addDetailRow(o);
    formDirty = false;
  }

  function saveDetails() {
    const observations = [];
    for (const tr of form.querySelectorAll("tr.obs-row")) {
      const o = {};
      for (const f of FIELDS) o[f] = tr.querySelector(`[name="${f}"]`).value.trim();
      if (!o.species) { irbis.flash("every observation needs a species", "error"); return; }
      observations.push({
        species: o.species, count: Number.parseInt(o.count, 10) || 1, sex: o.sex || null,
        life_stage: o.life_stage || null, behavior: o.behavior || null, comments: o.comments,
      });
    }
    formDirty = false;
    write(() => irbis.api("POST", `/api/sequences/${seq.id}/observations`,
      { observations, versions: irbis.versionsOf(seq.media) }),
    () => `saved ${observations.length} observation${observations.length > 1 ? "s" : ""}`);
  }

  if (form) {
    form.addEventListener("input", () => { formDirty = true; });
    form.addEventListener("submit", (ev) => { ev.preventDefault(); saveDetails(); });
    document.getElementById("obs-add").addEventListener("click", () => { addDetailRow({}); formDirty = true; });
    document.getElementById("obs-reset").addEventListener("click", () => renderDetails(true));
  }

  // ------------------------------------------------------------------ boxes

  /* Run box writes one after another, in the order they were asked for. */
  function enqueue(fn) {
    chain = chain.then(fn, fn);
    return chain;
  }

  function apply(res) {
    const m = seq.media.find((x) => x.id === res.media_id);
    if (!m) return;
    m.reviewed_boxes = res.reviewed_boxes;
    renderBoxHistory();
    showFrame();
  }

  async function boxCall(method, path, body, done) {
    try {
      const res = await irbis.api(method, path, body);
      apply(res);
      if (done) irbis.flash(done);
      return res;
    } catch (e) {
      irbis.flash(e.message, "error");
      if (e.status === 409 || e.status === 404) {
        sel = null;
        draft = null;
        await reload();
      }
      return null;
    }
  }

  /* Save the selected box's unsaved place: a new box is drawn, a moved one is moved. */
  function save() {
    clearTimeout(saveTimer);
    return enqueue(async () => {
      if (!sel || !draft || (sel.kind !== "new" && sel.kind !== "rev")) return;
      const m = media();
      const d = draft;
      const place = { x: d.x, y: d.y, width: d.width, height: d.height };
      const res = sel.kind === "new"
        ? await boxCall("POST", `/api/media/${m.id}/boxes`,
          { ...place, category: "animal", frame: 0, seen: seenOf(m) }, "box drawn")
        : await boxCall("PUT", `/api/boxes/${sel.id}`, place, "box saved");
      if (res && res.changed) {
        sel = { kind: "rev", id: res.changed };
        if (draft === d) draft = null;
        showFrame();
      }
    });
  }

  function saveSoon() {
    clearTimeout(saveTimer);
    saveTimer = setTimeout(save, 1000);
  }

  function frameAction(path, done) {
    clearTimeout(saveTimer);
    if (sel && sel.kind === "new") sel = null;
    draft = null;
    return enqueue(async () => {
      const m = media();
      const res = await boxCall("POST", `/api/media/${m.id}/${path}`, { frame: 0, seen: seenOf(m) }, done);
      if (res) sel = null;
      showFrame();
    });
  }

  function accept() {
    if (!sel || sel.kind !== "machine") { irbis.flash("select a machine box first (s, or click it)", "error"); return; }
    const id = sel.id;
    enqueue(async () => {
      const m = media();
      const res = await boxCall("POST", `/api/media/${m.id}/boxes/accept`,
        { detection_id: id, seen: seenOf(m) }, "machine box accepted");
      if (res && res.changed) sel = { kind: "rev", id: res.changed };
      showFrame();
    });
  }

  function removeSelected() {
    if (!sel || sel.kind === "machine") { irbis.flash("select one of your boxes first", "error"); return; }
    clearTimeout(saveTimer);
    if (sel.kind === "new") { sel = null; draft = null; showFrame(); return; }
    const id = sel.id;
    draft = null;
    sel = null;
    enqueue(() => boxCall("DELETE", `/api/boxes/${id}`, undefined, "box deleted"));
  }

  function cycle(delta) {
    const m = media();
    const all = [
      ...reviewed(m).filter((b) => b.x !== null).map((b) => ({ kind: "rev", id: b.id })),
      ...machineBoxes(m).map((b) => ({ kind: "machine", id: b.id })),
    ];
    if (!all.length) { irbis.flash("no box on this frame: drag on it or press d to draw one", "error"); return; }
    if (draft) save();
    const i = sel ? all.findIndex((o) => o.kind === sel.kind && o.id === sel.id) : -1;
    sel = all[(i + delta + all.length) % all.length];
    showFrame();
  }

  function nudge(key, resize) {
    const b = selectedBox();
    if (!b) return false;
    if (sel.kind === "machine") { irbis.flash("accept the machine box first (a), then move it", "error"); return true; }
    let { x, y, width, height } = b;
    const dx = key === "ArrowRight" ? STEP : key === "ArrowLeft" ? -STEP : 0;
    const dy = key === "ArrowDown" ? STEP : key === "ArrowUp" ? -STEP : 0;
    if (resize) {
      width = clamp(width + dx, STEP, 1 - x);
      height = clamp(height + dy, STEP, 1 - y);
    } else {
      x = clamp(x + dx, 0, 1 - width);
      y = clamp(y + dy, 0, 1 - height);
    }
    draft = { x, y, width, height };
    showFrame();
    saveSoon();
    return true;
  }

  function newBoxInMiddle() {
    if (draft) save();
    sel = { kind: "new", id: null };
    draft = { x: 0.4, y: 0.4, width: 0.2, height: 0.2 };
    showFrame();
    saveSoon();
  }

  function escape() {
    clearTimeout(saveTimer);
    if (draft && sel && sel.kind === "rev") draft = null;
    else { sel = null; draft = null; }
    showFrame();
  }

  function point(ev) {
    const r = svg.getBoundingClientRect();
    return { x: clamp((ev.clientX - r.left) / r.width, 0, 1), y: clamp((ev.clientY - r.top) / r.height, 0, 1) };
  }

  svg.addEventListener("mousedown", (ev) => {
    if (!editable() || ev.button !== 0) return;
    ev.preventDefault();
    const p = point(ev);
    const t = ev.target;
    const corner = t.getAttribute && t.getAttribute("data-corner");
    const kind = t.getAttribute && t.getAttribute("data-kind");
    const b = selectedBox();
    if (corner && b) {
      drag = { mode: "resize", corner, orig: { ...b }, p };
    } else if (kind === "rev" || kind === "new") {
      if (kind === "rev") {
        const id = Number(t.getAttribute("data-id"));
        if (!sel || sel.kind !== "rev" || sel.id !== id) { if (draft) save(); sel = { kind: "rev", id }; draft = null; }
      }
      drag = { mode: "move", orig: { ...selectedBox() }, p };
    } else {
      if (draft) save();
      drag = { mode: "draw", p, machine: kind === "machine" ? Number(t.getAttribute("data-id")) : null };
    }
    clearTimeout(saveTimer);
    showFrame();
  });

  window.addEventListener("mousemove", (ev) => {
    if (!drag) return;
    const p = point(ev);
    const dx = p.x - drag.p.x;
    const dy = p.y - drag.p.y;
    if (drag.mode === "draw") {
      if (Math.abs(dx) < MIN && Math.abs(dy) < MIN && !drag.moved) return;
      drag.moved = true;
      sel = { kind: "new", id: null };
      draft = { x: Math.min(p.x, drag.p.x), y: Math.min(p.y, drag.p.y), width: Math.abs(dx), height: Math.abs(dy) };
    } else if (drag.mode === "move") {
      const o = drag.orig;
      draft = { x: clamp(o.x + dx, 0, 1 - o.width), y: clamp(o.y + dy, 0, 1 - o.height), width: o.width, height: o.height };
      drag.moved = drag.moved || Math.abs(dx) > 0.001 || Math.abs(dy) > 0.001;
    } else {
      const o = drag.orig;
      let x0 = o.x, y0 = o.y, x1 = o.x + o.width, y1 = o.y + o.height;
      if (drag.corner.includes("w")) x0 = p.x; else x1 = p.x;
      if (drag.corner.includes("n")) y0 = p.y; else y1 = p.y;
      draft = { x: Math.min(x0, x1), y: Math.min(y0, y1), width: Math.abs(x1 - x0), height: Math.abs(y1 - y0) };
      drag.moved = true;
    }
    drawBoxes(media());
  });

  window.addEventListener("mouseup", () => {
    if (!drag) return;
    const d = drag;
    drag = null;
    if (d.mode === "draw" && !d.moved) {
      // A click, not a drag: select the machine box under it, or unselect.
      sel = d.machine !== null ? { kind: "machine", id: d.machine } : null;
      draft = null;
      showFrame();
      return;
    }
    if (!draft || draft.width < MIN || draft.height < MIN) {
      if (sel && sel.kind === "new") sel = null;
      draft = null;
      showFrame();
      return;
    }
    if (d.mode !== "draw" && !d.moved) { draft = null; showFrame(); return; }
    save();
  });

  // ------------------------------------------------------------------ navigation

  async function flush() {
    if (draft) await save();
    await chain;
    await writes;
  }

  async function go(which) {
    const id = seq.neighbours && seq.neighbours[which];
    if (!id) {
      irbis.flash(which === "next" ? "last sequence of this filter" : "first sequence of this filter");
      return;
    }
    await flush();
    window.location = `/sequences/${id}${qs ? "?" + qs : ""}`;
  }

  async function toFrame(i) {
    if (draft) await save();
    sel = null;
    draft = null;
    index = i;
    showFrame();
  }

  function step(d) {
    toFrame((index + d + seq.media.length) % seq.media.length);
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
  const on = (id, fn) => { const b = document.getElementById(id); if (b) b.addEventListener("click", fn); };
  on("box-accept", accept);
  on("accept-proposal", acceptProposal);
  on("box-delete", removeSelected);
  on("no-animal", () => frameAction("no-animal", "no animal in this frame"));
  on("animal-here", () => frameAction("animal-here", "animal here: the sequence no longer counts as blank"));
  stage.addEventListener("dblclick", zoom);
  stage.addEventListener("mousemove", (ev) => {
    if (!zoomed || drag) return;
    const r = stage.getBoundingClientRect();
    stage.style.setProperty("--ox", `${(100 * (ev.clientX - r.left)) / r.width}%`);
    stage.style.setProperty("--oy", `${(100 * (ev.clientY - r.top)) / r.height}%`);
  });
  img.addEventListener("load", showFrame);  // handles are sized in pixels of the shown frame
  window.addEventListener("beforeunload", () => { if (draft) save(); });

  document.addEventListener("keydown", (ev) => {
    if (irbis.typing(ev) || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const k = ev.key;
    if (editable()) {
      const arrow = ["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown"].includes(k);
      if (arrow && sel && nudge(k, ev.shiftKey)) { ev.preventDefault(); return; }
      let used = true;
      if (k === "d") newBoxInMiddle();
      else if (k === "s") cycle(1);
      else if (k === "S") cycle(-1);
      else if (k === "Enter" && draft) save();
      else if (k === "Escape" && sel) escape();
      else if ((k === "Delete" || k === "Backspace" || k === "x") && sel) removeSelected();
      else if (k === "a") accept();
      else if (k === "e") frameAction("no-animal", "no animal in this frame");
      else if (k === "h") frameAction("animal-here", "animal here: the sequence no longer counts as blank");
      else used = false;
      if (used) { ev.preventDefault(); return; }
    }
    const lab = irbis.labelFromKey(k);
    if (lab) { ev.preventDefault(); label(lab); return; }
    if (k === "n" || k === "ArrowRight") { ev.preventDefault(); go("next"); }
    else if (k === "p" || k === "ArrowLeft") { ev.preventDefault(); go("previous"); }
    else if (k === "." ) step(1);
    else if (k === ",") step(-1);
    else if (k === "z") zoom();
    else if (k === "u") undo();
    else if (k === "y") acceptProposal();
    else if (k === "c") irbis.askCount();
    else if (k === "?") document.getElementById("hotkeys").classList.toggle("hidden");
  });

  irbis.onPick = label;  // the species panel's buttons and search

  renderStrip();
  showFrame();
  renderLabels();
  renderDetails(true);
  renderBoxHistory();
})();
