/* Field records page: a reviewer marks a snare removed and links genotypes to individuals. */
"use strict";

(() => {
  async function act(method, path, body, done) {
    try {
      await irbis.api(method, path, body);
      irbis.flash(done);
      setTimeout(() => window.location.reload(), 400);
    } catch (err) {
      irbis.flash(err.message, "error");
    }
  }
  document.addEventListener("click", (ev) => {
    const b = ev.target.closest("button");
    if (!b) return;
    if (b.classList.contains("mark-removed")) {
      act("PATCH", `/api/field-records/${b.dataset.id}`, { status: "removed" }, "snare marked removed");
    } else if (b.classList.contains("link")) {
      const sel = b.parentElement.querySelector("select.link-to");
      if (!sel || !sel.value) return;
      act("POST", `/api/genotypes/${b.dataset.genotype}/link`,
        { individual_id: Number(sel.value) }, "genotype linked");
    } else if (b.classList.contains("unlink")) {
      act("POST", `/api/genotypes/${b.dataset.genotype}/unlink`,
        { individual_id: Number(b.dataset.individual) }, "link retracted");
    }
  });
})();
