"""The census report: one self-contained HTML file and a PDF (``irbis report``).

- :mod:`irbis.reports.census` gathers the numbers (effort, records, catalogue,
  estimates) into plain data;
- :mod:`irbis.reports.plots` and :mod:`irbis.reports.maps` draw them with
  matplotlib (maps in projected metres, no tiles);
- :mod:`irbis.reports.html` renders the Jinja2 template with every image inline;
- :mod:`irbis.reports.pdf` prints it with headless Chromium, or lays it out
  with matplotlib where no browser is installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from irbis.reports.census import Census, gather_census

__all__ = ["Census", "build_report", "gather_census"]


def build_report(
    project: Any,
    out_html: str | Path,
    *,
    pdf: str | Path | None = None,
    public: bool = True,
    pdf_engine: str = "auto",
    **options: Any,
) -> dict[str, Any]:
    """Gather a census and write its HTML report (and PDF).

    Parameters
    ----------
    project:
        An open :class:`irbis.store.Project`.
    out_html:
        The HTML file to write.
    pdf:
        Also write this PDF.
    public:
        Generalise sensitive locations (default) or not.
    pdf_engine:
        ``auto``, ``chromium`` or ``matplotlib``.
    **options:
        Passed to :func:`gather_census` (``species``, ``occasion_days``...).

    Returns
    -------
    dict
        ``html``, ``pdf``, ``pdf_engine`` and the census digest.
    """
    from irbis.reports.html import render_html

    census = gather_census(project, public=public, **options)
    html = render_html(census)
    out_html = Path(out_html)
    tmp = out_html.with_name(out_html.name + ".part")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out_html)
    res: dict[str, Any] = {"html": str(out_html), "pdf": None, "pdf_engine": None}
    if pdf is not None:
        from irbis.reports.pdf import write_pdf

        made = write_pdf(census, pdf, html=html, engine=pdf_engine)
        res["pdf"], res["pdf_engine"] = made["path"], made["engine"]
    res["census"] = census.to_json()
    return res
