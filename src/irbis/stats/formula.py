"""R-style model formulas for linear submodels on the link scale.

``"D~1 lambda0~Topo*Water sigma~stdRgd"`` gives one formula per real
parameter. The right-hand side is R's model language as ``model.matrix``
reads it:

- covariate names joined by ``+``; ``1`` (intercept, the default), ``0`` or
  ``-1`` (no intercept); ``- term`` drops a term;
- interactions ``a:b`` and crossings ``a*b`` (``a + b + a:b``; ``a*b*c`` all
  of them); terms are ordered by degree (main effects first) as ``terms()``
  orders them;
- ``poly(x, d)``: orthogonal polynomials as R's ``poly`` builds them (the
  data's own three-term recurrence, so new values are predicted as
  ``predict(poly)`` does); ``poly(x, d, raw = TRUE)`` for raw powers.

Numeric covariates enter as one column each; factors (string covariates)
with treatment contrasts against the first level in R's order. A factor in
an interaction is coded by contrasts when the term without it is already in
the model (its margin) and by one indicator per level otherwise, the rule of
R's ``model.matrix`` (Chambers & Hastie 1992, p. 38); without an intercept
the first factor gets one indicator per level. Columns are named as R
``secr`` names coefficients: ``D`` for the intercept of ``D``, ``D.stdGC``,
``lambda0.TopoSaddle``, ``lambda0.TopoSaddle:WaterYes``,
``D.poly(x, 2)1``.

``s(x, k = 5)`` and ``s(x, y, k = 12)`` are regression splines as secr
builds them with mgcv (thin plate basis, fixed df; see
:mod:`irbis.stats.smooth`), columns ``D.s(x).1`` ... ``D.s(x).4``; they
enter additively (no interactions). Anything else (function calls such as
``log(x)`` or ``I(x^2)``, ``^``, parentheses, ``%in%``, ``te()``) is refused
in one line.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from irbis.core.errors import BadInputError
from irbis.stats.smooth import SmoothSpec, parse_smooth, smooth_basis, smooth_label, smooth_spec

__all__ = [
    "NO_INTERCEPT",
    "Design",
    "design_matrix",
    "parse_model",
    "parse_rhs",
    "poly_basis",
    "r_levels",
    "rhs_text",
    "factor_levels",
    "model_row",
    "covariates_read",
    "term_variables",
    "variables_of",
]

_NAME = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.]*$")
#: marker term (last in a term list) of a formula without intercept
NO_INTERCEPT = "-1"
_SUPPORTED = "use covariate names with +, :, *, -1, poly(x, d) and s(x, k = 5)"
_SMOOTH_HINT = "use s(x, k = 5) or s(x, y, k = 12) (thin plate regression splines)"


# ---------------------------------------------------------------------------
# parsing


def _split_depth0(text: str, seps: str) -> list[tuple[str, str]]:
    """Split ``text`` at characters of ``seps`` outside parentheses.

    Returns ``(separator before the piece, piece)`` pairs; the first
    separator is ``""``.
    """
    out: list[tuple[str, str]] = []
    depth, start, sep = 0, 0, ""
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise BadInputError("model", f"unbalanced ')' in {text!r}", _SUPPORTED)
        elif depth == 0 and ch in seps:
            out.append((sep, text[start:i]))
            sep, start = ch, i + 1
    if depth != 0:
        raise BadInputError("model", f"unbalanced '(' in {text!r}", _SUPPORTED)
    out.append((sep, text[start:]))
    return out


def _call_args(inner: str) -> list[tuple[str | None, str]]:
    args = []
    for _, a in _split_depth0(inner, ","):
        a = a.strip()
        m = re.match(r"^([A-Za-z_.][A-Za-z0-9_.]*)\s*=(?!=)\s*(.+)$", a)
        args.append((m.group(1), m.group(2).strip()) if m else (None, a))
    return args


def _variable(text: str, param: str) -> str:
    """Normalise one variable of a term to R's deparsed form (``poly(x, 2)``)."""
    text = text.strip()
    if _NAME.match(text):
        return text
    m = re.match(r"^([A-Za-z_.][A-Za-z0-9_.]*)\s*\((.*)\)$", text, flags=re.S)
    if not m:
        raise BadInputError("model", f"term {text!r} of {param} is not supported", _SUPPORTED)
    fn, inner = m.group(1), m.group(2)
    if fn == "s":
        names, k = parse_smooth(text, param)
        return f"s({', '.join(names)}, k = {k})"
    if fn in ("te", "ti", "t2"):
        raise BadInputError(
            "model", f"regression spline {text!r} of {param} is not supported", _SMOOTH_HINT
        )
    if fn != "poly":
        raise BadInputError("model", f"function {fn}() in {param}~{text} is not supported",
                            _SUPPORTED)  # fmt: skip
    args = _call_args(inner)
    pos = [v for k, v in args if k is None]
    named = {k: v for k, v in args if k is not None}
    bad = set(named) - {"degree", "raw"}
    two_vars = len(pos) == 2 and "degree" in named
    if not pos or not _NAME.match(pos[0]) or len(pos) > 2 or bad or two_vars:
        raise BadInputError(
            "model",
            f"{text!r} of {param} is not supported",
            "write poly(x, d) or poly(x, degree = d, raw = TRUE) with one covariate",
        )
    deg = pos[1] if len(pos) > 1 else named.get("degree", "1")
    if not re.match(r"^[0-9]+$", deg) or int(deg) < 1:
        raise BadInputError("model", f"degree {deg!r} of {text!r} is not a whole number >= 1")
    if "raw" in named and named["raw"] not in ("TRUE", "FALSE", "T", "F"):
        raise BadInputError("model", f"raw = {named['raw']} in {text!r}", "use TRUE or FALSE")
    parts = [f"{k} = {v}" if k else v for k, v in args]
    return f"poly({', '.join(parts)})"


def term_variables(label: str) -> list[str]:
    """The variables of a term label (``"Topo:Water"`` -> ``["Topo", "Water"]``).

    Parameters
    ----------
    label:
        A term as :func:`parse_rhs` writes it.

    Returns
    -------
    list of str
    """
    return [v.strip() for _, v in _split_depth0(label, ":")]


def covariates_read(var: str) -> list[str]:
    """The covariates one variable of a term reads (``poly(x, 2)`` and ``s(x, k = 5)`` read x).

    Parameters
    ----------
    var:
        A variable of a term (see :func:`term_variables`).

    Returns
    -------
    list of str
    """
    if var.startswith("poly("):
        return [_poly_spec(var)[0]]
    if var.startswith("s("):
        return list(parse_smooth(var)[0])
    return [var]


def parse_rhs(rhs: str, param: str = "") -> list[str]:
    """Expand a right-hand side into R's term labels, in ``terms()`` order.

    Parameters
    ----------
    rhs:
        E.g. ``"Topo*Water"``, ``"x + y - 1"``, ``"poly(x,2)"``.
    param:
        The parameter (for messages).

    Returns
    -------
    list of str
        Term labels (``["Topo", "Water", "Topo:Water"]``), followed by
        :data:`NO_INTERCEPT` when the formula has no intercept; ``[]`` is
        ``~1``.
    """
    text = rhs.strip()
    if not text:
        raise BadInputError("model", f"empty formula for {param}", "write ~1 for a constant")
    intercept = True
    keep: list[frozenset[str]] = []
    drop: list[frozenset[str]] = []
    var_order: list[str] = []
    pieces = _split_depth0(text, "+-")
    for j, (sep, piece) in enumerate(pieces):
        piece = piece.strip()
        if not piece:
            if sep in ("", "+") and j + 1 < len(pieces):
                # a leading '-' ("-1") or "+-" leaves an empty piece before it
                continue
            raise BadInputError("model", f"dangling '{sep}' in {param}~{rhs}", _SUPPORTED)
        if piece in ("0", "1"):
            intercept = (piece == "0") != (sep != "-")
            continue
        if re.match(r"^[0-9.]+$", piece):
            raise BadInputError("model", f"constant {piece!r} in {param}~{rhs}", "use 1, 0 or -1")
        if "^" in piece or "%" in piece or "|" in piece or piece.startswith("("):
            raise BadInputError("model", f"term {piece!r} of {param} is not supported", _SUPPORTED)
        factors = []
        for _, part in _split_depth0(piece, "*"):
            vs = [_variable(v, param) for _, v in _split_depth0(part, ":")]
            for v in vs:
                if v not in var_order:
                    var_order.append(v)
            factors.append(frozenset(vs))
        expanded = []
        for r in range(1, len(factors) + 1):
            for combo in itertools.combinations(factors, r):
                expanded.append(frozenset().union(*combo))
        (drop if sep == "-" else keep).extend(expanded)
    terms: list[frozenset[str]] = []
    for t in keep:
        if t not in terms and t not in drop:
            terms.append(t)
    terms.sort(key=len)  # stable: by degree, then order of appearance
    labels = [":".join(v for v in var_order if v in t) for t in terms]
    if not intercept:
        if not labels:
            raise BadInputError("model", f"{param}~{rhs} has no terms", "keep the intercept")
        labels.append(NO_INTERCEPT)
    return labels


def variables_of(terms: Sequence[str]) -> list[str]:
    """The covariates a term list reads (``poly(x, 2)`` reads ``x``), in order.

    Parameters
    ----------
    terms:
        Term labels.

    Returns
    -------
    list of str
    """
    out: list[str] = []
    for t in terms:
        if t == NO_INTERCEPT:
            continue
        for v in term_variables(t):
            for name in covariates_read(v):
                if name not in out:
                    out.append(name)
    return out


def factor_levels(
    terms: Sequence[str],
    covariates: Mapping[str, np.ndarray],
    fixed: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, list[str]]:
    """Levels of every factor a term list reads (``fixed`` ones as given).

    Parameters
    ----------
    terms:
        Term labels.
    covariates:
        Covariate arrays.
    fixed:
        Levels to use instead of the data's.

    Returns
    -------
    dict
        ``{covariate: levels}`` for the string-valued covariates.
    """
    out = {}
    for v in variables_of(terms):
        if fixed and v in fixed:
            out[v] = list(fixed[v])
        elif v in covariates and np.asarray(covariates[v]).dtype.kind in "OUS":
            out[v] = r_levels(covariates[v])
    return out


def rhs_text(terms: Sequence[str]) -> str:
    """Write term labels back as a right-hand side (``"Topo + Water - 1"``).

    Parameters
    ----------
    terms:
        Labels as :func:`parse_rhs` returns them.

    Returns
    -------
    str
    """
    body = [t for t in terms if t != NO_INTERCEPT]
    text = " + ".join(body) if body else "1"
    return text + (" - 1" if NO_INTERCEPT in terms else "")


def _split_formulas(text: str) -> list[tuple[str, str]]:
    """``"D~1 lambda0~Topo * Water, sigma~poly(x, 2)"`` into (lhs, rhs) pairs."""
    depth = 0
    starts: list[tuple[int, int, str]] = []  # (start of lhs, position after ~, lhs)
    pat = re.compile(r"([A-Za-z_.][A-Za-z0-9_.]*)\s*~")
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0:
            m = pat.match(text, i)
            if m and (i == 0 or not re.match(r"[A-Za-z0-9_.]", text[i - 1])):
                starts.append((i, m.end(), m.group(1)))
                i = m.end()
                continue
        i += 1
    if not starts:
        raise BadInputError("model", f"{text.strip()!r} is not a formula",
                            "write e.g. 'D~1 lambda0~Topo sigma~1'")  # fmt: skip
    lead = text[: starts[0][0]].strip(" \t\n,;")
    if lead:
        raise BadInputError("model", f"{lead!r} is not a formula", "write e.g. 'D~1 lambda0~Topo'")
    pairs = []
    for j, (_, after, lhs) in enumerate(starts):
        end = starts[j + 1][0] if j + 1 < len(starts) else len(text)
        pairs.append((lhs, text[after:end].strip().rstrip(",;").strip()))
    return pairs


def parse_model(
    model: str | Mapping[str, str] | None, params: tuple[str, ...]
) -> dict[str, list[str]]:
    """Parse ``"D~1 lambda0~Topo*Water"`` into term labels per parameter.

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
        Term labels per parameter (see :func:`parse_rhs`); ``[]`` means ``~1``.
    """
    out: dict[str, list[str]] = {p: [] for p in params}
    if model is None:
        return out
    if isinstance(model, str):
        pairs = _split_formulas(model)
    else:
        pairs = [(k, str(v).strip().lstrip("~").strip()) for k, v in model.items()]
    for lhs, rhs in pairs:
        lhs = lhs.strip()
        if lhs not in params:
            raise BadInputError(
                "model", f"unknown parameter {lhs!r}", f"this model has {', '.join(params)}"
            )
        out[lhs] = [t for t in parse_rhs(rhs, lhs)]
    return out


def r_levels(values: Any) -> list[str]:
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


# ---------------------------------------------------------------------------
# orthogonal polynomials


def poly_basis(
    x: np.ndarray, degree: int, coefs: Mapping[str, np.ndarray] | None = None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """R's ``poly(x, degree)``: orthogonal polynomial columns and their coefficients.

    Fitting: the powers of the centred ``x`` orthogonalised in order (QR),
    each column scaled to unit length. Prediction at new ``x`` (``coefs``
    given) uses the three-term recurrence of those coefficients, as
    ``predict(poly)``.

    Parameters
    ----------
    x:
        Values.
    degree:
        Highest power.
    coefs:
        ``{"alpha", "norm2"}`` from a previous call (to predict).

    Returns
    -------
    Z:
        ``(len(x), degree)`` columns.
    coefs:
        ``{"alpha": (degree,), "norm2": (degree + 2,)}``.
    """
    x = np.asarray(x, dtype=float)
    if coefs is None:
        if degree >= len(np.unique(x)):
            raise BadInputError(
                "model", f"poly degree {degree} needs more than {degree} distinct values"
            )
        xbar = float(x.mean())
        xc = x - xbar
        X = xc[:, None] ** np.arange(degree + 1)[None, :]
        Q, R = np.linalg.qr(X)
        Z = Q * np.diag(R)[None, :]
        norm2 = (Z**2).sum(axis=0)
        alpha = ((xc[:, None] * Z**2).sum(axis=0) / norm2 + xbar)[:degree]
        coefs = {"alpha": alpha, "norm2": np.concatenate([[1.0], norm2])}
        return Z[:, 1:] / np.sqrt(norm2[1:])[None, :], coefs
    alpha, norm2 = np.asarray(coefs["alpha"]), np.asarray(coefs["norm2"])
    Z = np.ones((len(x), degree + 1))
    Z[:, 1] = x - alpha[0]
    for i in range(1, degree):
        Z[:, i + 1] = (x - alpha[i]) * Z[:, i] - (norm2[i + 1] / norm2[i]) * Z[:, i - 1]
    Z = Z / np.sqrt(norm2[1:])[None, :]
    return Z[:, 1:], coefs


def _poly_spec(var: str) -> tuple[str, int, bool]:
    m = re.match(r"^poly\((.*)\)$", var)
    assert m is not None
    args = _call_args(m.group(1))
    pos = [v for k, v in args if k is None]
    named = {k: v for k, v in args if k is not None}
    deg = int(pos[1] if len(pos) > 1 else named.get("degree", "1"))
    return pos[0], deg, named.get("raw", "FALSE") in ("TRUE", "T")


# ---------------------------------------------------------------------------
# design matrices


@dataclass
class Design:
    """Design matrix of one real parameter.

    Attributes
    ----------
    matrix:
        ``(rows, p)`` float array.
    names:
        Coefficient names, R secr style.
    terms:
        The term label of each column (``None`` for the intercept).
    intercept:
        Whether the first column is the intercept.
    poly:
        Coefficients of the ``poly()`` variables (to predict at new values).
    smooth:
        Bases of the ``s()`` variables (to predict at new values).
    """

    matrix: np.ndarray
    names: list[str]
    terms: list[str | None] = field(default_factory=list)
    intercept: bool = True
    poly: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    smooth: dict[str, SmoothSpec] = field(default_factory=dict)


def _missing_factor(v: np.ndarray) -> int:
    return int(sum(str(x).strip() in ("", "NA", "NaN", "nan", "null") for x in v))


def design_matrix(
    param: str,
    terms: list[str],
    covariates: Mapping[str, np.ndarray],
    n_rows: int,
    *,
    where: str,
    min_rows_per_level: int = 1,
    levels: Mapping[str, list[str]] | None = None,
    poly: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    smooth: Mapping[str, SmoothSpec] | None = None,
) -> Design:
    """Build the design matrix of ``param ~ terms`` as R's ``model.matrix`` does.

    Parameters
    ----------
    param:
        Real parameter name (prefix of coefficient names).
    terms:
        Term labels from :func:`parse_model` (``[]`` for ``~1``).
    covariates:
        Covariate arrays, each of length ``n_rows``.
    n_rows:
        Number of rows (mask points or traps).
    where:
        What the rows are, for error messages (``"traps"``, ``"mask"``).
    min_rows_per_level:
        Each level of a factor main effect must occur on at least this many rows.
    levels:
        Optional fixed factor levels (e.g. from the fitted data, to predict).
    poly:
        Optional ``poly()`` coefficients by variable label (to predict).
    smooth:
        Optional ``s()`` bases by variable label (to predict, or built over
        several sessions' data).

    Returns
    -------
    Design
    """
    intercept = NO_INTERCEPT not in terms
    labels = [t for t in terms if t != NO_INTERCEPT]
    var_sets = [term_variables(t) for t in labels]
    cols: list[np.ndarray] = [np.ones(n_rows)] if intercept else []
    names: list[str] = [param] if intercept else []
    col_terms: list[str | None] = [None] if intercept else []
    poly_out: dict[str, dict[str, np.ndarray]] = {}
    smooth_out: dict[str, SmoothSpec] = {}
    cache: dict[str, tuple[str, Any]] = {}

    def variable(v: str) -> tuple[str, Any]:
        """('factor', levels) or ('numeric', [(suffix, column)])."""
        if v in cache:
            return cache[v]
        if v.startswith("poly("):
            name, deg, raw = _poly_spec(v)
            x = _numeric(name)
            if raw:
                blocks = [(f"{v}{j}", x**j) for j in range(1, deg + 1)]
            else:
                Z, cf = poly_basis(x, deg, (poly or {}).get(v))
                poly_out[v] = cf
                blocks = [(f"{v}{j + 1}", Z[:, j]) for j in range(deg)]
            cache[v] = ("numeric", blocks)
            return cache[v]
        if v.startswith("s("):
            names_s, k = parse_smooth(v, param)
            x = np.column_stack([_numeric(c) for c in names_s])
            given = (smooth or {}).get(v)
            spec = given or smooth_spec(names_s, k, x, where)
            smooth_out[v] = spec
            Z = smooth_basis(spec, x) if given is not None or spec.fitted is None else spec.fitted
            lab = smooth_label(names_s)
            cache[v] = ("numeric", [(f"{lab}.{j + 1}", Z[:, j]) for j in range(Z.shape[1])])
            return cache[v]
        if v not in covariates:
            avail = ", ".join(sorted(covariates)) or "none"
            raise BadInputError(
                where, f"no covariate {v!r} for {param}~{v}", f"covariates available: {avail}"
            )
        arr = np.asarray(covariates[v])
        if arr.dtype == object or arr.dtype.kind in "US":
            arr = arr.astype(object)
            missing = _missing_factor(arr)
            if missing:
                raise BadInputError(
                    where,
                    f"factor {v!r} has missing values at {missing} rows",
                    "fill them or drop those rows",
                )
            lv = list(levels[v]) if levels and v in levels else r_levels(arr)
            if len(lv) < 2:
                raise BadInputError(
                    where, f"factor {v!r} has a single level", f"drop {v} from {param}"
                )
            cache[v] = ("factor", (arr, lv))
        else:
            cache[v] = ("numeric", [(v, _numeric(v))])
        return cache[v]

    def _numeric(v: str) -> np.ndarray:
        if v not in covariates:
            avail = ", ".join(sorted(covariates)) or "none"
            raise BadInputError(
                where, f"no covariate {v!r} for {param}~{v}", f"covariates available: {avail}"
            )
        arr = np.asarray(covariates[v])
        if arr.dtype == object or arr.dtype.kind in "US":
            raise BadInputError(where, f"poly() or s() of factor {v!r}", "use a numeric covariate")
        x = arr.astype(float)
        if np.any(~np.isfinite(x)):
            raise BadInputError(
                where,
                f"covariate {v!r} has missing values at {int(np.sum(~np.isfinite(x)))} rows",
                "fill them or drop those rows",
            )
        return x

    # R's coding: a factor is coded by contrasts where the term without it is
    # (contained in) an earlier term, or where it is a main effect; else by
    # indicators; without an intercept the first factor gets indicators
    dummy_first: tuple[int, str] | None = None
    if not intercept:
        for j, vs in enumerate(var_sets):
            fac = [v for v in vs if variable(v)[0] == "factor"]
            if fac:
                dummy_first = (j, fac[0])
                break
    for j, (label, vs) in enumerate(zip(labels, var_sets, strict=True)):
        if len(vs) > 1 and any(v.startswith("s(") for v in vs):
            raise BadInputError(
                "model", f"interaction {label!r} of {param} with a spline", "add s() terms"
            )
        blocks_per_var: list[list[tuple[str, np.ndarray]]] = []
        for v in vs:
            kind, spec = variable(v)
            if kind == "numeric":
                blocks_per_var.append(spec)
                continue
            arr, lv = spec
            rest = set(vs) - {v}
            contrasts = not rest or any(rest <= set(var_sets[i]) for i in range(j))
            if dummy_first == (j, v):
                contrasts = False
            use = lv[1:] if contrasts else lv
            if len(vs) == 1 and levels is None:
                for lev in lv:
                    k = int(np.sum(arr == lev))
                    if k < min_rows_per_level:
                        raise BadInputError(
                            where,
                            f"factor {v!r} level {lev!r} occurs at only {k} {where} row(s): "
                            f"{param}.{v}{lev} is not estimable",
                            "merge rare levels or use a numeric covariate",
                        )
            blocks_per_var.append([(f"{v}{lev}", (arr == lev).astype(float)) for lev in use])
        # the first variable varies fastest, as in R
        for combo in itertools.product(*reversed(blocks_per_var)):
            combo = tuple(reversed(combo))
            col = np.ones(n_rows)
            for _, c in combo:
                col = col * c
            cols.append(col)
            names.append(f"{param}." + ":".join(s for s, _ in combo))
            col_terms.append(label)
    matrix = np.column_stack(cols) if cols else np.zeros((n_rows, 0))
    return Design(matrix=matrix, names=names, terms=col_terms, intercept=intercept,
                  poly=poly_out, smooth=smooth_out)  # fmt: skip


def model_row(
    param: str,
    terms: list[str],
    newdata: Mapping[str, Any],
    levels: Mapping[str, list[str]],
    design: Design,
) -> np.ndarray:
    """One design row at ``newdata`` (numeric covariates left out are 0, factors their first level).

    Parameters
    ----------
    param:
        Real parameter.
    terms:
        Its term labels.
    newdata:
        Covariate values.
    levels:
        Factor levels of the fit.
    design:
        The fitted design (its ``poly`` coefficients are reused).

    Returns
    -------
    numpy.ndarray
        ``(p,)``.
    """
    covs: dict[str, np.ndarray] = {}
    for t in terms:
        if t == NO_INTERCEPT:
            continue
        for name in (c for v in term_variables(t) for c in covariates_read(v)):
            if name in levels:
                lv = levels[name]
                val = str(newdata.get(name, lv[0]))
                if val in ("True", "False") and val not in lv:
                    val = val.upper()  # logical response terms (secr's TRUE)
                if val not in lv:
                    raise BadInputError("newdata", f"{name}={val!r} is not a level", f"use {lv}")
                covs[name] = np.array([val], dtype=object)
            else:
                covs[name] = np.array([float(newdata.get(name, 0.0))])
    d = design_matrix(param, terms, covs, 1, where="newdata", levels=dict(levels),
                      poly=design.poly, smooth=design.smooth)  # fmt: skip
    return d.matrix[0]
