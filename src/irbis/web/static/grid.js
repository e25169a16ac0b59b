/* The sequence grid: keyboard focus, selection and (bulk) labelling. */
"use strict";

(() => {
  const grid = document.getElementById("grid");
  if (!grid) return;
  const tiles = () => Array.from(grid.querySelectorAll(".tile"));
  const filters = JSON.parse(grid.dataset.filters || "{}");
  const undoStack = [];

  function focused() {
    return document.activeElement && document.activeElement.classList.contains("tile")
      ? document.activeElement : null;
  }

  function columns() {
    const all = tiles();
    if (all.length < 2) return 1;
    const top = all[0].offsetTop;
    const n = all.findIndex((t) => t.offsetTop !== top);
    return n === -1 ? all.length : n;
  }

  function move(delta) {
    const all = tiles();
    if (!all.length) return;
    const cur = focused();
    let i = cur ? all.indexOf(cur) + delta : 0;
    i = Math.max(0, Math.min(all.length - 1, i));
    all[i].focus();
  }

  function targets() {
    const sel = tiles().filter((t) => t.classList.contains("selected"));
    if (sel.length) return sel;
    const cur = focused();
    return cur ? [cur] : [];
  }

  function renderLabels(tile, label, by) {
    const box = tile.querySelector(".labels");
    box.innerHTML = "";
    const span = document.createElement("span");
    span.className = "label p-human";
    span.title = `human · ${by}`;
    span.textContent = label.blank ? "blank" : label.species + (label.count > 1 ? ` ×${label.count}` : "");
    box.appendChild(span);
    tile.classList.add("reviewed");
  }

  async function label(label) {
    const ts = targets();
    if (!ts.length) { irbis.flash("focus or select a sequence first", "error"); return; }
    const items = ts.map((t) => ({
      sequence_id: Number(t.dataset.id),
      versions: irbis.versionsOf(JSON.parse(t.dataset.versions)),
    }));
    try {
      const me = await irbis.api("GET", "/api/me");
      const res = items.length === 1
        ? [await irbis.api("POST", `/api/sequences/${items[0].sequence_id}/label`,
            { ...label, versions: items[0].versions })]
        : (await irbis.api("POST", "/api/sequences/label", { ...label, items })).results;
      for (const r of res) {
        const t = grid.querySelector(`.tile[data-id="${r.sequence_id}"]`);
        const media = Object.entries(r.versions).map(([id, v]) => ({ id: Number(id), version: v }));
        t.dataset.versions = JSON.stringify(media);
        renderLabels(t, label, me.name);
        t.classList.remove("selected");
      }
      undoStack.push(res.map((r) => r.sequence_id));
      irbis.flash(`labelled ${res.length} sequence${res.length > 1 ? "s" : ""}: ${label.blank ? "blank" : label.species}`);
      if (ts.length === 1) move(1);
    } catch (e) {
      irbis.flash(e.message, "error");
    }
  }

  async function undo() {
    const ids = undoStack.pop();
    if (!ids) { irbis.flash("nothing to undo on this page", "error"); return; }
    try {
      for (const id of ids) {
        const t = grid.querySelector(`.tile[data-id="${id}"]`);
        const r = await irbis.api("POST", `/api/sequences/${id}/undo`,
          { versions: irbis.versionsOf(JSON.parse(t.dataset.versions)) });
        t.dataset.versions = JSON.stringify(
          Object.entries(r.versions).map(([k, v]) => ({ id: Number(k), version: v })));
        const fresh = await irbis.api("GET", `/api/sequences/${id}`);
        const box = t.querySelector(".labels");
        box.innerHTML = "";
        for (const l of fresh.labels) {
          const s = document.createElement("span");
          s.className = `label p-${l.provenance}`;
          s.textContent = l.species || l.type;
          box.appendChild(s);
        }
        t.classList.toggle("reviewed", fresh.reviewed);
      }
      irbis.flash("undone");
    } catch (e) {
      irbis.flash(e.message, "error");
    }
  }

  document.addEventListener("keydown", (ev) => {
    if (irbis.typing(ev) || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const k = ev.key;
    const lab = irbis.labelFromKey(k);
    if (lab) { ev.preventDefault(); label(lab); return; }
    if (k === "ArrowRight") { ev.preventDefault(); move(1); }
    else if (k === "ArrowLeft") { ev.preventDefault(); move(-1); }
    else if (k === "ArrowDown") { ev.preventDefault(); move(columns()); }
    else if (k === "ArrowUp") { ev.preventDefault(); move(-columns()); }
    else if (k === "Enter" && focused()) {
      const q = new URLSearchParams(filters).toString();
      window.location = `/sequences/${focused().dataset.id}${q ? "?" + q : ""}`;
    } else if (k === "x" && focused()) { focused().classList.toggle("selected"); }
    else if (k === "a") { tiles().forEach((t) => t.classList.add("selected")); }
    else if (k === "c") { irbis.askCount(); }
    else if (k === "u") { undo(); }
    else if (k === "n") { const a = document.getElementById("next-page"); if (a) window.location = a.href; }
  });
  grid.addEventListener("click", (ev) => {
    const t = ev.target.closest(".tile");
    if (t && (ev.shiftKey || ev.ctrlKey)) { ev.preventDefault(); t.classList.toggle("selected"); }
  });
  const first = tiles()[0];
  if (first) first.focus();
})();
