"""R-style model formulas for linear submodels on the link scale.

``"D~1 lambda0~Topo sigma~stdRgd"`` gives one formula per real parameter.
Right-hand sides are ``1`` or terms joined by ``+`` (covariate names; ``-1``
is not supported). Numeric covariates enter as one column each; factors
(string covariates) enter with treatment contrasts against the first level in
sorted order, as R does. Columns are named as R ``secr`` names coefficients:
``D`` for the intercept of ``D``, ``D.stdGC``, ``lambda0.TopoSaddle``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from irbis.core.errors import BadInputError

__all__ = ["Design", "design_matrix", "parse_model", "r_levels"]

_NAME = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.]*$")


def parse_model(
    model: str | Mapping[str, str] | None, params: tuple[str, ...]
) -> dict[str, list[str]]:
    """Parse ``"D~1 lambda0~Topo"`` into ``{"D": [], "lambda0": ["Topo"], ...}``.

    Parameters
    ----------
    model:
        Formulas separated by whitespace, commas or semicolons, or a mapping
        ``{"lambda0": "~Topo"}``; parameters left out get ``~1``.
    params:
        The real parameters the model may name.

    Returns
    -------
    dict
        Terms (covariate names) per parameter; an empty list means ``~1``.
    """
    out: dict[str, list[str]] = {p: [] for p in params}
    if model is None:
        return out
    if isinstance(model, str):
        text = re.sub(r"\s*~\s*", "~", model.strip())
        text = re.sub(r"\s*\+\s*", "+", text)
        items = [s for s in re.split(r"[\s,;]+", text) if s]
        pairs = []
        for it in items:
            if "~" not in it:
                raise BadInputError(
                    "model", f"{it!r} is not a formula", "write e.g. 'D~1 lambda0~Topo sigma~1'"
                )
            lhs, rhs = it.split("~", 1)
            pairs.append((lhs, rhs))
    else:
        pairs = [(k, v.lstrip("~ ").strip()) for k, v in model.items()]
    for lhs, rhs in pairs:
        lhs = lhs.strip()
        if lhs not in params:
            raise BadInputError(
                "model", f"unknown parameter {lhs!r}", f"this model has {', '.join(params)}"
            )
        terms = [t.strip() for t in rhs.replace(" ", "").split("+") if t.strip()]
        if not terms:
            raise BadInputError("model", f"empty formula for {lhs}", "write ~1 for a constant")
        terms = [t for t in terms if t != "1"]
        for t in terms:
            if not _NAME.match(t):
                raise BadInputError(
                    "model", f"term {t!r} of {lhs} is not supported", "use covariate names and +"
                )
        out[lhs] = terms
    return out


def r_levels(values: np.ndarray) -> list[str]:
    """Factor levels in the order R gives them (``factor()`` sorts by the locale).

    R's usual locales collate letters case-insensitively, lower case first on
    ties (``"canyon" < "Canyon" < "saddle"``); digits and punctuation come
    before letters as in plain sorting.

    Parameters
    ----------
    values:
        String values (any iterable).

    Returns
    -------
    list of str
        Distinct values, sorted.
    """
    return sorted({str(v) for v in values}, key=lambda s: (s.casefold(), s.swapcase()))


@dataclass
class Design:
    """Design matrix of one real parameter.

    Attributes
    ----------
    matrix:
        ``(rows, p)`` float array (first column is the intercept).
    names:
        Coefficient names, R secr style.
    """

    matrix: np.ndarray
    names: list[str]


def design_matrix(
    param: str,
    terms: list[str],
    covariates: Mapping[str, np.ndarray],
    n_rows: int,
    *,
    where: str,
    min_rows_per_level: int = 1,
    levels: Mapping[str, list[str]] | None = None,
) -> Design:
    """Build the treatment-contrast design matrix of ``param ~ terms``.

    Parameters
    ----------
    param:
        Real parameter name (prefix of coefficient names).
    terms:
        Covariate names (``[]`` for ``~1``).
    covariates:
        Covariate arrays, each of length ``n_rows``.
    n_rows:
        Number of rows (mask points or traps).
    where:
        What the rows are, for error messages (``"traps"``, ``"mask"``).
    min_rows_per_level:
        Each factor level must occur on at least this many rows.
    levels:
        Optional fixed factor levels (e.g. from the fitted data, to predict).

    Returns
    -------
    Design
    """
    cols = [np.ones(n_rows)]
    names = [param]
    for t in terms:
        if t not in covariates:
            avail = ", ".join(sorted(covariates)) or "none"
            raise BadInputError(
                where, f"no covariate {t!r} for {param}~{t}", f"covariates available: {avail}"
            )
        v = covariates[t]
        if v.dtype == object:
            missing = int(sum(str(x).strip() in ("", "NA", "NaN", "nan", "null") for x in v))
            if missing:
                raise BadInputError(
                    where,
                    f"factor {t!r} has missing values at {missing} rows",
                    "fill them or drop those rows",
                )
            lv = list(levels[t]) if levels and t in levels else r_levels(v)
            if len(lv) < 2:
                raise BadInputError(
                    where, f"factor {t!r} has a single level", f"drop {t} from {param}"
                )
            for lev in lv:
                k = int(np.sum(v == lev))
                if levels is None and k < min_rows_per_level:
                    raise BadInputError(
                        where,
                        f"factor {t!r} level {lev!r} occurs at only {k} {where} row(s): "
                        f"{param}.{t}{lev} is not estimable",
                        "merge rare levels or use a numeric covariate",
                    )
            for lev in lv[1:]:
                cols.append((v == lev).astype(float))
                names.append(f"{param}.{t}{lev}")
        else:
            x = np.asarray(v, dtype=float)
            if np.any(~np.isfinite(x)):
                raise BadInputError(
                    where,
                    f"covariate {t!r} has missing values at {int(np.sum(~np.isfinite(x)))} rows",
                    "fill them or drop those rows",
                )
            cols.append(x)
            names.append(f"{param}.{t}")
    return Design(matrix=np.column_stack(cols), names=names)
