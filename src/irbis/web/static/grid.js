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
    const cur = focused() || lastTile;
    let i = cur ? all.indexOf(cur) + delta : 0;
    i = Math.max(0, Math.min(all.length - 1, i));
    all[i].focus();
  }

  // The tile last focused: a click on the species panel takes the focus from it.
  let lastTile = null;
  grid.addEventListener("focusin", (ev) => {
    if (ev.target.classList && ev.target.classList.contains("tile")) lastTile = ev.target;
  });

  function targets() {
    const sel = tiles().filter((t) => t.classList.contains("selected"));
    if (sel.length) return sel;
    const cur = focused() || (lastTile && lastTile.isConnected ? lastTile : null);
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

  /* Writes run one after another; each reads the versions its tiles hold when it
     starts, which the previous write has updated (no 409 against one's own label).
     The tiles a label is for are taken when the key is pressed. After a real
     conflict the writes asked for before it was shown are dropped. */
  let writes = Promise.resolve();
  let epoch = 0;

  function queue(fn) {
    const mine = epoch;
    writes = writes.then(async () => {
      if (mine !== epoch) return;
      try {
        await fn();
      } catch (e) {
        irbis.flash(e.message, "error");
        if (e.status === 409) epoch += 1;
      }
    });
    return writes;
  }

  let me = null;
  async function whoAmI() {
    if (!me) me = await irbis.api("GET", "/api/me");
    return me;
  }

  function label(label) {
    const ts = targets();
    if (!ts.length) { irbis.flash("focus or select a sequence first", "error"); return; }
    if (ts.length === 1) move(1);
    return queue(async () => {
      const items = ts.map((t) => ({
        sequence_id: Number(t.dataset.id),
        versions: irbis.versionsOf(JSON.parse(t.dataset.versions)),
      }));
      const user = await whoAmI();
      const res = items.length === 1
        ? [await irbis.api("POST", `/api/sequences/${items[0].sequence_id}/label`,
            { ...label, versions: items[0].versions })]
        : (await irbis.api("POST", "/api/sequences/label", { ...label, items })).results;
      for (const r of res) {
        const t = grid.querySelector(`.tile[data-id="${r.sequence_id}"]`);
        const media = Object.entries(r.versions).map(([id, v]) => ({ id: Number(id), version: v }));
        t.dataset.versions = JSON.stringify(media);
        renderLabels(t, label, user.name);
        t.classList.remove("selected");
      }
      undoStack.push(res.map((r) => r.sequence_id));
      irbis.flash(`labelled ${res.length} sequence${res.length > 1 ? "s" : ""}: ${label.blank ? "blank" : label.species}`);
    });
  }

  /* p: the focused (or selected) sequences take the classifier's proposal as
     the person's label, recorded as machine-proposed, person-confirmed.
     Undo (u) takes it back like any label. */
  function accept() {
    const ts = targets().filter((t) => {
      const p = t.querySelector(".proposal");
      return p && p.dataset.species;
    });
    if (!ts.length) { irbis.flash("no species proposal here to accept", "error"); return; }
    if (ts.length === 1) move(1);
    return queue(async () => {
      const user = await whoAmI();
      const done = [];
      for (const t of ts) {
        const prop = t.querySelector(".proposal");
        const species = prop.dataset.species;
        const r = await irbis.api("POST", `/api/sequences/${t.dataset.id}/accept`,
          { versions: irbis.versionsOf(JSON.parse(t.dataset.versions)), species });
        t.dataset.versions = JSON.stringify(
          Object.entries(r.versions).map(([id, v]) => ({ id: Number(id), version: v })));
        renderLabels(t, { species, count: 1 }, user.name);
        prop.classList.add("accepted");
        t.classList.remove("selected");
        done.push(r.sequence_id);
      }
      undoStack.push(done);
      irbis.flash(`accepted the proposal on ${done.length} sequence${done.length > 1 ? "s" : ""}`);
    });
  }

  function undo() {
    return queue(async () => {
      const ids = undoStack.pop();
      if (!ids) { irbis.flash("nothing to undo on this page", "error"); return; }
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
        const prop = t.querySelector(".proposal");
        if (prop) prop.classList.remove("accepted");
      }
      irbis.flash("undone");
    });
  }

  irbis.onPick = label;  // the species panel's buttons and search

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
      const id = focused().dataset.id;
      writes.then(() => { window.location = `/sequences/${id}${q ? "?" + q : ""}`; });
    } else if (k === "x" && focused()) { focused().classList.toggle("selected"); }
    else if (k === "a") { tiles().forEach((t) => t.classList.add("selected")); }
    else if (k === "c") { irbis.askCount(); }
    else if (k === "u") { undo(); }
    else if (k === "p" || k === "y") { accept(); }  // y as on the sequence page
    else if (k === "n") { const a = document.getElementById("next-page"); if (a) writes.then(() => { window.location = a.href; }); }
  });
  grid.addEventListener("click", (ev) => {
    const t = ev.target.closest(".tile");
    if (t && (ev.shiftKey || ev.ctrlKey)) { ev.preventDefault(); t.classList.toggle("selected"); }
  });
  const first = tiles()[0];
  if (first) first.focus();
})();
