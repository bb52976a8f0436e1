"""The hypothesis matrices of lmerTest's F-tables: types I, II and III, term by term.

lmerTest (``anova_contrasts.R``, ``contrast_utils.R``) builds, for each term of the fixed
part, a matrix ``L`` whose rows are linear functions of β tested jointly:

* type I (sequential): the rows of the Doolittle factor of XᵀX for the term's columns;
* type II: the term's own columns for a term contained in no other (marginal), else the
  Doolittle rows of XᵀX with the term and the terms containing it moved last;
* type III: the contrasts of a treatment-coded X against the full dummy coding of each
  term (``ginv(X) rdX``), orthogonalised for each term against the terms that contain it,
  then mapped to the model's own coding (``ginv(X_treatment) X``) — so the hypotheses are
  the same whatever contrasts the model uses.

Containment is SAS's, as lmerTest defines it: F1 is contained in F2 if F2 has all of F1's
variables and more, and both involve the same numeric variables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sparselmm.errors import ModelSpecError, SparseLMMError
from sparselmm.frame.modelframe import model_matrix
from sparselmm.frame.rows import model_frame
from sparselmm.spec.vocabulary import call_arguments, call_texts

if TYPE_CHECKING:  # pragma: no cover
    from sparselmm.fitting.fitted import FittedModel

__all__ = ["fixed_terms", "contained_in", "drop_scope", "hypotheses", "zapsmall", "doolittle_rows"]


def zapsmall(x: np.ndarray, digits: int = 7) -> np.ndarray:
    """R's ``zapsmall`` (R 4.2's, which lmerTest's reference values were made with): round to
    ``digits - log10(max |x|)`` decimals, that number itself rounded as R's ``round`` rounds it
    (``1.4142136`` stays with 7 decimals; R 4.4 takes the ceiling, 6)."""
    x = np.asarray(x, dtype=float)
    mx = float(np.max(np.abs(x))) if x.size else 0.0
    if mx == 0.0:
        return np.round(x, digits)
    return np.round(x, max(0, int(np.floor(digits - np.log10(mx) + 0.5))))


def doolittle_rows(M: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """``t(L)`` of lmerTest's Doolittle decomposition ``M = L U`` (L unit lower triangular; an
    entry of L whose pivot is below ``eps`` is 0, entries below ``eps`` are zapped)."""
    n = M.shape[0]
    L = np.eye(n)
    U = np.zeros((n, n))
    for i in range(n):
        U[i, :] = M[i, :] - L[i, :i] @ U[:i, :]
        for j in range(i + 1, n):
            v = M[j, i] - L[j, :i] @ U[:i, i]
            L[j, i] = 0.0 if abs(U[i, i]) < eps else v / U[i, i]
    L[np.abs(L) < eps] = 0.0
    return L.T


def fixed_terms(m: "FittedModel") -> list[tuple[str, list[int], tuple[str, ...], tuple[bool, ...]]]:
    """The fixed part's terms: (R's label, its columns among β, its variables, which are factors)."""
    d = m.design
    terms = getattr(d.fixed_spec, "terms", None)
    if terms is None:
        raise SparseLMMError("this model's fixed part has no term structure (a design made by hand)")
    pos = _kept_positions(d)
    out = []
    for t in terms:
        cols = [pos[j] for j in t.columns if j in pos]
        out.append((t.label, cols, t.factors, t.categorical))
    return out


def _kept_positions(d: Any) -> dict[int, int]:
    """Spec column -> its position among β (the columns kept after the rank check)."""
    keep = d.fixed_keep
    if keep is None:
        return {j: j for j in range(len(d.X_names))}
    keep = np.asarray(keep)
    idx = np.flatnonzero(keep) if keep.dtype == bool else keep.astype(int)
    return {int(j): k for k, j in enumerate(idx)}


def drop_scope(terms: list[tuple[str, Any]]) -> list[str]:
    """R's ``drop.scope``: the labels of the terms (label, variables) whose variables no other
    term has all of, and more: the terms that can be dropped alone."""
    sets = [(a, set(v)) for a, v in terms]
    return [a for a, va in sets if not any(va < vb for b, vb in sets if b != a)]


def contained_in(terms: list) -> dict[str, list[str]]:
    """term -> the terms that contain it (SAS's containment, as lmerTest's ``containment``)."""
    vars_ = {t[0]: set(t[2]) for t in terms}
    nums = {t[0]: {v for v, c in zip(t[2], t[3]) if not c} for t in terms}
    return {a: [b for b in vars_ if vars_[a] <= vars_[b] and vars_[b] - vars_[a] and nums[a] == nums[b]] for a in vars_}


def _type1(X: np.ndarray, terms: list) -> dict[str, np.ndarray]:
    L = doolittle_rows(X.T @ X) if X.shape[1] > 1 else np.ones((1, 1))
    return {t[0]: L[t[1], :] for t in terms}


def _type2(X: np.ndarray, terms: list, has_intercept: bool) -> dict[str, np.ndarray]:
    contained = contained_in(terms)
    col_terms = ["(Intercept)"] * int(has_intercept) + [""] * (X.shape[1] - int(has_intercept))
    for label, cols, _, _ in terms:
        for j in cols:
            col_terms[j] = label
    out: dict[str, np.ndarray] = {}
    p = X.shape[1]
    for label, cols, _, _ in terms:
        if not contained[label]:  # marginal: the term's own coefficients
            out[label] = np.eye(p)[cols, :]
            continue
        inside = [j for j in range(p) if col_terms[j] == label or col_terms[j] in contained[label]]
        order = [j for j in range(p) if j not in inside] + inside
        Lc = doolittle_rows(X[:, order].T @ X[:, order])
        rows = [k for k, j in enumerate(order) if col_terms[j] == label]
        back = np.empty(p, dtype=int)
        back[order] = np.arange(p)
        out[label] = Lc[np.ix_(rows, back)]
    return out


def _type3(m: "FittedModel", X: np.ndarray, terms: list, has_intercept: bool) -> dict[str, np.ndarray]:
    d = m.design
    call = getattr(m, "call", None)
    frame, given = model_frame(d, None if call is None else call.data)
    factors = [c for c in d.factor_categories if c in frame.columns and isinstance(frame[c].dtype, pd.CategoricalDtype)]
    fixed_factors = [c for c in factors if c in set(v for t in terms for v in t[2])]
    Xt_full, names_t, _ = model_matrix(_treatment(d.formula.fixed), frame, "the treatment-coded fixed-effects matrix",
                                       given, {c: "contr.treatment" for c in fixed_factors} or None)
    pos = _kept_positions(d)
    keep = sorted(pos, key=pos.get)
    Xt, names_t = Xt_full[:, keep], [names_t[j] for j in keep]
    # the full dummy coding of every term, and the intercept
    blocks, rd_names = [], []
    if has_intercept:
        blocks.append(np.ones((X.shape[0], 1)))
        rd_names.append("(Intercept)")
    spans = {}
    for label, _, _, _ in terms:
        B, nm, _ = model_matrix(f"0 + {_treatment(label)}", frame, f"the full coding of term {label!r}", given)
        spans[label] = (len(rd_names), len(rd_names) + B.shape[1])
        blocks.append(B)
        rd_names += nm
    rdX = np.hstack(blocks)
    Xt_pinv = np.linalg.pinv(Xt)
    L = zapsmall((Xt_pinv @ rdX).T)  # rows: rdX's parameters; columns: Xt's
    contained = contained_in(terms)
    col_of = {label: cols for label, cols, _, _ in terms}
    order = sorted(terms, key=lambda t: len(t[2]), reverse=True)  # higher-order terms first
    for label, cols, _, _ in order:
        if contained[label] and cols:
            others = [j for c in contained[label] for j in col_of[c]]
            A, Y = L[:, others], L[:, cols]
            coef, *_ = np.linalg.lstsq(A, Y, rcond=None)
            L[:, cols] = zapsmall(Y - A @ coef)
    index = {nm: i for i, nm in enumerate(rd_names)}
    missing = [nm for nm in names_t if nm not in index]
    if missing:
        raise SparseLMMError(f"type III hypotheses: no full-coding column for {missing} (please report this model)")
    L = L[[index[nm] for nm in names_t], :]  # rows of the model's coefficients (treatment coded)
    to_model = zapsmall(Xt_pinv @ X)  # Xt's coefficients in the model's own coding
    out = {}
    for label, cols, _, _ in terms:
        Lt = L[:, cols].T @ to_model
        out[label] = Lt[np.abs(Lt).sum(axis=1) > 1e-8, :]
    return out


def _treatment(text: str) -> str:
    """``text`` with every ``C(f, contrasts)`` the user wrote coded by treatment contrasts instead
    (lmerTest's remake codes every factor so), the same in the model's terms as in their full coding."""
    for call in call_texts(text, "C"):
        pos, named = call_arguments(call)
        arg = named.get("object", pos[0] if pos else "")
        text = text.replace(call, f'C({arg}, "contr.treatment")')
    return text


def hypotheses(m: "FittedModel", type: int = 3) -> dict[str, np.ndarray]:  # noqa: A002 - lmerTest's name
    """lmerTest's hypothesis matrix of each fixed term for an F-table of ``type`` 1, 2 or 3.

    Parameters
    ----------
    m : FittedModel
        An in-memory fit (the matrices need the model matrix).
    type : {1, 2, 3}

    Returns
    -------
    dict of str to numpy.ndarray
        R's term label -> L (rows × p), in the order of the formula's terms.
    """
    d = m.design
    if d.X.shape[0] != d.n:
        raise ModelSpecError("anova() of one model needs the model matrix, which a Dask fit does not keep; "
                             "compare nested models with slm.anova(m0, m1) instead")
    terms = [t for t in fixed_terms(m) if t[1]]
    X = d.X
    has_intercept = bool(d.X_names) and d.X_names[0] == "(Intercept)"
    if X.shape[1] <= 1 or len(terms) <= 1 or type == 1:
        return _type1(X, terms)
    if type == 2:
        return _type2(X, terms, has_intercept)
    return _type3(m, X, terms, has_intercept)
