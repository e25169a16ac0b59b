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

  function labelFromKey(key) {
    if (key === "b") return { blank: true };
    if (/^[1-9]$/.test(key)) {
      const sp = species[Number(key) - 1];
      if (!sp) return null;
      const out = { species: sp, count: count || 1 };
      count = null;
      showCount();
      return out;
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

  return { api, flash, json, labelFromKey, askCount, typing, versionsOf, species };
})();
