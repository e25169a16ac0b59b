/* Identification review: query crop next to a candidate, matched keypoints drawn. */
"use strict";

(() => {
  const ann = irbis.json("ann-data");
  const nextId = irbis.json("next-id");
  const canvas = document.getElementById("pair");
  const ctx = canvas.getContext("2d");
  const proposals = ann.proposals.filter((p) => p.rank >= 1 || p.individual_id !== null);
  const proposeNew = ann.proposals.find((p) => p.individual_id === null);
  let current = 0;

  function buttons() {
    const box = document.getElementById("candidates");
    box.innerHTML = "";
    proposals.forEach((p, i) => {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = `${i + 1}. ${p.name || "?"} ${p.probability !== null ? "(" + p.probability.toFixed(2) + ")" : ""}`;
      b.className = i === current ? "on" : "";
      b.addEventListener("click", () => { current = i; show(); });
      box.appendChild(b);
    });
    if (proposeNew) {
      const s = document.createElement("span");
      s.className = "hint";
      s.textContent = ` machine thinks: possibly a new individual (${(proposeNew.probability || 0).toFixed(2)})`;
      box.appendChild(s);
    }
  }

  async function show() {
    buttons();
    const W = canvas.width, H = canvas.height, half = W / 2;
    ctx.fillStyle = "#111";
    ctx.fillRect(0, 0, W, H);
    const qimg = await irbisCrops.load(ann.media_id);
    const mapQ = irbisCrops.draw(ctx, qimg, ann.box, 0, 0, half - 4, H);
    const p = proposals[current];
    const info = document.getElementById("pair-info");
    if (!p) {
      document.getElementById("cand-title").textContent = "no candidate";
      info.textContent = "The catalogue has no candidate for this photo.";
      return;
    }
    document.getElementById("cand-title").textContent = `${p.name} (rank ${p.rank})`;
    if (!p.photo) { info.textContent = "no photo of this candidate"; return; }
    const cimg = await irbisCrops.load(p.photo.media_id);
    const mapC = irbisCrops.draw(ctx, cimg, p.photo.box, half + 4, 0, half - 4, H);
    const m = p.matches || {};
    const q = m.query_xy || [], c = m.match_xy || [];
    info.textContent = `score ${p.score !== null ? p.score.toFixed(2) : "–"} · probability ` +
      `${p.probability !== null ? p.probability.toFixed(2) : "–"} · ${q.length} matched keypoints` +
      (m.via_annotation_id ? ` · matched on photo #${m.via_annotation_id} of this encounter` : "");
    if (!document.getElementById("show-lines").checked) return;
    ctx.lineWidth = 1.2;
    for (let i = 0; i < Math.min(q.length, c.length); i++) {
      const [x1, y1] = mapQ(q[i][0], q[i][1]);
      const [x2, y2] = mapC(c[i][0], c[i][1]);
      ctx.strokeStyle = `hsl(${(i * 47) % 360}, 90%, 60%)`;
      ctx.beginPath(); ctx.moveTo(x1, y1); ctx.lineTo(x2, y2); ctx.stroke();
      ctx.beginPath(); ctx.arc(x1, y1, 3, 0, 7); ctx.arc(x2, y2, 3, 0, 7); ctx.stroke();
    }
  }

  // The whole frame and its burst, beside the crop: pose, flank and light are often
  // plainer in the frames around the one the matcher used.
  const burst = ann.burst && ann.burst.length ? ann.burst : [{ media_id: ann.media_id, annotations: [] }];
  let frameAt = Math.max(0, burst.findIndex((f) => f.media_id === ann.media_id));
  const stage = document.getElementById("context-stage");
  const frameImg = document.getElementById("context-frame");
  const frameSvg = document.getElementById("context-boxes");
  const SVG = "http://www.w3.org/2000/svg";

  function showFrame(i) {
    frameAt = Math.min(burst.length - 1, Math.max(0, i));
    const f = burst[frameAt];
    frameImg.src = f.mediatype === "video" ? `/api/media/${f.media_id}/thumb?size=640` : `/api/media/${f.media_id}/file`;
    frameSvg.innerHTML = "";
    const boxes = f.annotations.length || f.media_id !== ann.media_id
      ? f.annotations : [{ id: ann.id, box: ann.box }];
    for (const a of boxes) {
      const r = document.createElementNS(SVG, "rect");
      const mine = a.id === ann.id;
      r.setAttribute("class", "box");
      r.setAttribute("vector-effect", "non-scaling-stroke");
      if (!mine) r.setAttribute("style", "stroke: #7fd3ff; stroke-dasharray: 4 3");
      for (const [k, v] of [["x", a.box.x], ["y", a.box.y], ["width", a.box.width], ["height", a.box.height]]) {
        r.setAttribute(k, v);
      }
      r.dataset.annotation = a.id;
      frameSvg.appendChild(r);
    }
    const strip = document.getElementById("burst");
    strip.querySelectorAll("img").forEach((im, j) => im.classList.toggle("on", j === frameAt));
    const who = f.annotations.filter((a) => a.individual).map((a) => a.individual);
    document.getElementById("context-info").textContent =
      `frame ${frameAt + 1} of ${burst.length}` + (f.time_local ? ` · ${f.time_local.slice(11, 19)}` : "") +
      (f.media_id === ann.media_id ? " · this photo" : "") + (who.length ? ` · ${who.join(", ")}` : "");
  }

  function buildStrip() {
    const strip = document.getElementById("burst");
    burst.forEach((f, j) => {
      const im = document.createElement("img");
      im.src = `/api/media/${f.media_id}/thumb?size=160`;
      im.alt = `frame ${j + 1}`;
      im.loading = "lazy";
      im.dataset.media = f.media_id;
      im.addEventListener("click", () => showFrame(j));
      strip.appendChild(im);
    });
  }

  function toggleZoom(ev) {
    if (ev && ev.offsetX !== undefined) {
      const r = stage.getBoundingClientRect();
      stage.style.setProperty("--ox", `${(100 * (ev.clientX - r.left)) / r.width}%`);
      stage.style.setProperty("--oy", `${(100 * (ev.clientY - r.top)) / r.height}%`);
    } else if (!stage.classList.contains("zoomed")) {
      const b = ann.box; // zoom onto the animal
      stage.style.setProperty("--ox", `${100 * (b.x + b.width / 2)}%`);
      stage.style.setProperty("--oy", `${100 * (b.y + b.height / 2)}%`);
    }
    stage.classList.toggle("zoomed");
  }

  async function decide(decision) {
    const p = proposals[current];
    // The encounter is the unit: the decision also settles the sequence's other waiting photos.
    const body = {
      decision, version: ann.version, side: document.getElementById("side").value, encounter: true,
    };
    if (decision === "accept" || decision === "reject") {
      if (!p || p.individual_id === null) { irbis.flash("no candidate selected", "error"); return; }
      body.individual_id = p.individual_id;
    }
    if (decision === "new") {
      const name = window.prompt("Name of the new individual (empty: automatic name)", "");
      if (name === null) return;
      if (name.trim()) body.name = name.trim();
    }
    try {
      const r = await irbis.api("POST", `/api/annotations/${ann.id}/decision`, body);
      ann.version = r.version;
      const n = (r.annotations || []).length;
      irbis.flash(`${r.decision}${r.individual ? ": " + r.individual : ""}${n > 1 ? ` (${n} photos of the encounter)` : ""}`);
      if (decision === "reject") {
        proposals.splice(current, 1);
        current = 0;
        show();
      } else if (nextId) {
        setTimeout(() => { window.location = `/identify/${nextId}`; }, 400);
      } else {
        setTimeout(() => { window.location = "/identify"; }, 400);
      }
    } catch (e) {
      irbis.flash(e.message, "error");
    }
  }

  document.getElementById("accept").addEventListener("click", () => decide("accept"));
  document.getElementById("reject").addEventListener("click", () => decide("reject"));
  document.getElementById("new").addEventListener("click", () => decide("new"));
  document.getElementById("unsure").addEventListener("click", () => decide("unsure"));
  document.getElementById("show-lines").addEventListener("change", show);
  stage.addEventListener("click", toggleZoom);
  document.getElementById("zoom").addEventListener("click", () => toggleZoom());
  document.addEventListener("keydown", (ev) => {
    if (irbis.typing(ev) || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const k = ev.key;
    if (/^[1-9]$/.test(k) && proposals[Number(k) - 1]) { current = Number(k) - 1; show(); }
    else if (k === "a") decide("accept");
    else if (k === "r") decide("reject");
    else if (k === "w") decide("new");
    else if (k === "s") decide("unsure");
    else if (k === "l") document.getElementById("side").value = "left";
    else if (k === "g") document.getElementById("side").value = "right";
    else if (k === "f" && ann.proposed_side) document.getElementById("side").value = ann.proposed_side.side;
    else if (k === "k") { const c = document.getElementById("show-lines"); c.checked = !c.checked; show(); }
    else if (k === "n" && nextId) window.location = `/identify/${nextId}`;
    else if (k === "z") toggleZoom();
    else if (k === ",") showFrame(frameAt - 1);
    else if (k === ".") showFrame(frameAt + 1);
  });
  buildStrip();
  showFrame(frameAt);
  show().catch((e) => irbis.flash(e.message, "error"));
})();
