/* irbis: shared helpers for the pages (no library, no network beyond this app). */
"use strict";

const irbis = (() => {
  function flash(text, kind) {
    const el = document.getElementById("flash");
    if (!el) return;
    el.textContent = text;
    el.className = kind || "ok";
    clearTimeout(flash.t);
    flash.t = setTimeout(() => { el.className = ""; el.textContent = ""; }, kind === "error" ? 8000 : 2500);
  }

  async function api(method, path, body) {
    const opts = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const res = await fetch(path, opts);
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (!res.ok) {
      const msg = (data && data.detail) || res.statusText;
      const err = new Error(msg);
      err.status = res.status;
      throw err;
    }
    return data;
  }

  function json(id) {
    const el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }

  /* Keyboard labelling shared by the grid and the viewer: digits pick a
     species from the hotkey list, b = blank, c = ask a count for the next label. */
  const species = json("hotkey-species") || [];
  let count = null;

  function showCount() {
    const el = document.getElementById("count-state");
    if (el) el.textContent = count ? `next label: ${count} animals` : "";
  }

  function labelFor(sp) {
    const out = { species: sp, count: count || 1 };
    count = null;
    showCount();
    return out;
  }

  function labelFromKey(key) {
    if (key === "b") return { blank: true };
    if (/^[1-9]$/.test(key)) {
      const sp = species[Number(key) - 1];
      return sp ? labelFor(sp) : null;
    }
    return null;
  }

  function askCount() {
    const v = window.prompt("How many animals in the next label?", count || "1");
    const n = Number.parseInt(v, 10);
    count = Number.isFinite(n) && n > 0 ? n : null;
    showCount();
  }

  function typing(ev) {
    const t = ev.target;
    return t && (t.tagName === "INPUT" || t.tagName === "SELECT" || t.tagName === "TEXTAREA");
  }

  function versionsOf(mediaList) {
    const v = {};
    for (const m of mediaList) v[m.id] = m.version !== undefined ? m.version : m.review_version;
    return v;
  }

  const out = { api, flash, json, labelFromKey, labelFor, askCount, typing, versionsOf, species,
    onPick: null };

  /* The species panel: a button per species (click to label), a search over labels,
     scientific and common names (Enter labels with the first match, Esc leaves it),
     "/" to search from anywhere; admins add a species the search did not find. */
  function panel() {
    const box = document.getElementById("species-panel");
    if (!box) return;
    const search = document.getElementById("species-search");
    const list = document.getElementById("species-buttons");
    const addBtn = document.getElementById("species-add");
    const pick = (sp) => {
      if (!out.onPick) return;
      out.onPick(labelFor(sp));
    };
    const buttons = () => Array.from(list.querySelectorAll("button.sp"));
    const visible = () => buttons().filter((b) => !b.hidden);
    function filter() {
      const q = search.value.trim().toLowerCase();
      for (const b of buttons()) b.hidden = Boolean(q) && !b.dataset.search.includes(q);
      const exact = buttons().some((b) => b.dataset.label.toLowerCase() === q);
      if (addBtn) {
        addBtn.hidden = !q || exact;
        addBtn.textContent = `add “${search.value.trim()}” to the list`;
      }
      const none = document.getElementById("species-none");
      if (none) none.hidden = !q || visible().length > 0;
    }
    list.addEventListener("click", (ev) => {
      const b = ev.target.closest("button.sp");
      if (b) pick(b.dataset.label);
    });
    search.addEventListener("input", filter);
    search.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter") {
        ev.preventDefault();
        const first = visible()[0];
        if (first) { pick(first.dataset.label); search.value = ""; filter(); }
      } else if (ev.key === "Escape") {
        search.value = ""; filter(); search.blur();
      }
    });
    if (addBtn) {
      addBtn.addEventListener("click", async () => {
        const name = search.value.trim();
        try {
          const sp = await api("POST", "/api/species", { label: name });
          const b = document.createElement("button");
          b.type = "button";
          b.className = "sp listed";
          b.dataset.label = sp.label;
          b.dataset.search = sp.label.toLowerCase();
          b.textContent = sp.label;
          list.appendChild(b);
          flash(`added ${sp.label} to the species list`);
          search.value = "";
          filter();
          pick(sp.label);
        } catch (e) {
          flash(e.message, "error");
        }
      });
    }
    document.addEventListener("keydown", (ev) => {
      if (ev.key === "/" && !typing(ev) && !ev.ctrlKey && !ev.metaKey && !ev.altKey) {
        ev.preventDefault();
        search.focus();
      }
    });
  }
  panel();

  return out;
})();
