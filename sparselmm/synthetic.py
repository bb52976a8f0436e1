"""Simulated designs: synthetic stand-ins for data that cannot be bundled, at any size.

:func:`simulate_crossed` and :func:`simulate_crossed_binary` draw uniform crossed designs (every
row's two levels uniformly at random); :func:`simulate_ratings` and
:func:`simulate_lexical_decision` draw designs shaped like the published anchors of large
crossed fits — MovieLens ratings (heavy-tailed counts per user, Zipf-like popularity of the
items) and the English Lexicon Project's lexical decisions (each of ~800 subjects answering a
few thousand of ~80,000 items).  They are synthetic: the shapes (rows, levels, counts per level)
follow the real data sets' published descriptions, the responses are Gaussian draws from the
model they are fitted with.  All are reached as ``sparselmm.datasets.simulate_*``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from sparselmm import validate
from sparselmm.errors import ArgumentError

__all__ = ["simulate_crossed", "simulate_crossed_binary", "simulate_ratings", "simulate_lexical_decision"]


def _checked(seed: Any, counts: dict[str, Any], sds: dict[str, Any], reals: dict[str, Any] | None = None) -> np.random.Generator:
    """The generator of ``seed``, once the sizes (positive integers), standard deviations
    (non-negative) and other numbers (finite) are checked (:class:`~sparselmm.errors.ArgumentError`
    naming the argument)."""
    for name, v in counts.items():
        validate.count(v, name)
    for name, v in sds.items():
        validate.number(v, name, minimum=0.0)
    for name, v in (reals or {}).items():
        validate.number(v, name)
    return np.random.default_rng(validate.seed(seed))


def simulate_crossed(
    n_obs: int,
    n_a: int,
    n_b: int,
    seed: int = 0,
    *,
    sd_a: float = 1.0,
    sd_b: float = 0.5,
    sigma: float = 1.0,
    beta: tuple[float, float] = (2.0, 0.5),
) -> pd.DataFrame:
    """Simulate a crossed two-factor design (users x items, students x instructors).

    Each row draws its levels of ``a`` and ``b`` uniformly at random, a
    predictor ``x ~ N(0, 1)``, and the response

    .. math:: y = \\beta_0 + \\beta_1 x + a_{g(i)} + b_{h(i)} + \\varepsilon_i,
              a \\sim N(0, sd_a^2),\\ b \\sim N(0, sd_b^2),\\ \\varepsilon \\sim N(0, \\sigma^2).

    Parameters
    ----------
    n_obs, n_a, n_b : int
        Rows, and levels of the two grouping factors.
    seed : int
        Seed of :func:`numpy.random.default_rng`.
    sd_a, sd_b, sigma : float
        Standard deviations of the two random effects and of the residual.
    beta : (float, float)
        Intercept and slope of ``x``.

    Returns
    -------
    pandas.DataFrame
        Columns ``y``, ``x`` (float) and ``a``, ``b`` (Categorical; levels that
        were not drawn are dropped).
    """
    rng = _checked(seed, {"n_obs": n_obs, "n_a": n_a, "n_b": n_b}, {"sd_a": sd_a, "sd_b": sd_b, "sigma": sigma},
                   _beta(beta))
    eta, x, a, b = _crossed_predictor(rng, n_obs, n_a, n_b, sd_a, sd_b, beta)
    y = eta + sigma * rng.standard_normal(n_obs)
    return pd.DataFrame({"y": y, "x": x, "a": a, "b": b})


def _beta(beta: Any) -> dict[str, Any]:
    """``beta``'s two entries by name, for :func:`_checked`."""
    if isinstance(beta, (str, bytes)) or not hasattr(beta, "__len__") or len(beta) != 2:
        raise ArgumentError(f"beta must be two numbers (intercept, slope), got {beta!r}")
    return {"beta[0]": beta[0], "beta[1]": beta[1]}


def _crossed_predictor(rng: np.random.Generator, n_obs: int, n_a: int, n_b: int, sd_a: float, sd_b: float,
                       beta: tuple[float, float]) -> tuple[np.ndarray, np.ndarray, pd.Categorical, pd.Categorical]:
    """The simulated crossed designs' linear predictor ``β₀ + β₁x + a + b``, ``x`` and the two
    factors (levels that were not drawn dropped)."""
    ia = rng.integers(0, n_a, n_obs)
    ib = rng.integers(0, n_b, n_obs)
    x = rng.standard_normal(n_obs)
    ea = rng.standard_normal(n_a) * sd_a
    eb = rng.standard_normal(n_b) * sd_b
    eta = beta[0] + beta[1] * x + ea[ia] + eb[ib]
    a = pd.Categorical.from_codes(ia, categories=np.arange(n_a)).remove_unused_categories()
    b = pd.Categorical.from_codes(ib, categories=np.arange(n_b)).remove_unused_categories()
    return eta, x, a, b


def simulate_crossed_binary(
    n_obs: int,
    n_a: int,
    n_b: int,
    seed: int = 0,
    *,
    sd_a: float = 1.0,
    sd_b: float = 0.5,
    beta: tuple[float, float] = (-0.5, 0.5),
) -> pd.DataFrame:
    """Simulate a crossed two-factor design with a binary response (users x items answering
    right or wrong): the logistic counterpart of :func:`simulate_crossed`.

    Each row draws its levels of ``a`` and ``b`` uniformly at random and a predictor
    ``x ~ N(0, 1)``; the response is a Bernoulli draw with

    .. math:: \\operatorname{logit} P(y_i = 1) = \\beta_0 + \\beta_1 x_i + a_{g(i)} + b_{h(i)},
              a \\sim N(0, sd_a^2),\\ b \\sim N(0, sd_b^2),

    the model ``glmer(y ~ x + (1 | a) + (1 | b), family = binomial)`` fits.  Issue 22's benchmark
    uses ``simulate_crossed_binary(1_000_000, 20_000, 5_000, seed=1)``.

    Parameters
    ----------
    n_obs, n_a, n_b : int
        Rows, and levels of the two grouping factors.
    seed : int
        Seed of :func:`numpy.random.default_rng`.
    sd_a, sd_b : float
        Standard deviations of the two random effects on the logit scale.
    beta : (float, float)
        Intercept and slope of ``x`` on the logit scale.

    Returns
    -------
    pandas.DataFrame
        Columns ``y`` (0/1 integers), ``x`` (float) and ``a``, ``b`` (Categorical; levels that
        were not drawn are dropped).
    """
    rng = _checked(seed, {"n_obs": n_obs, "n_a": n_a, "n_b": n_b}, {"sd_a": sd_a, "sd_b": sd_b}, _beta(beta))
    eta, x, a, b = _crossed_predictor(rng, n_obs, n_a, n_b, sd_a, sd_b, beta)
    y = (rng.random(n_obs) < 1.0 / (1.0 + np.exp(-eta))).astype(np.int64)
    return pd.DataFrame({"y": y, "x": x, "a": a, "b": b})


def _gaussian_crossed(rng: np.random.Generator, ia: np.ndarray, ib: np.ndarray, n_a: int, n_b: int, names: tuple[str, str],
                      sd_a: float, sd_b: float, sigma: float, mean: float) -> pd.DataFrame:
    """``y = mean + a + b + ε`` on the given level codes, with the two factors as Categoricals."""
    ea = rng.standard_normal(n_a) * sd_a
    eb = rng.standard_normal(n_b) * sd_b
    y = mean + ea[ia] + eb[ib] + sigma * rng.standard_normal(len(ia))
    a = pd.Categorical.from_codes(ia, categories=np.arange(n_a)).remove_unused_categories()
    b = pd.Categorical.from_codes(ib, categories=np.arange(n_b)).remove_unused_categories()
    return pd.DataFrame({"y": y, names[0]: a, names[1]: b})


def _without_replacement(rng: np.random.Generator, counts: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """For each level of the first factor, ``counts[i]`` distinct levels of the second drawn with
    probabilities ∝ ``weights`` without replacement (Gumbel top-k: the k largest of
    ``log w + Gumbel``); the second factor's codes, in the first factor's order."""
    logw = np.log(weights)
    out = []
    for c in counts:
        g = logw + rng.gumbel(size=len(weights))
        # a copy of the first c: a view would keep each user's whole argpartition (len(weights)
        # int64s) alive, 12 GB for MovieLens 32M's 94,380 users of 16,034 items
        out.append(np.argpartition(-g, c - 1)[:c].astype(np.int32) if c < len(weights) else np.arange(len(weights), dtype=np.int32))
    return np.concatenate(out)


def simulate_ratings(
    n_obs: int = 1_000_209,
    n_users: int = 6_040,
    n_items: int = 3_706,
    seed: int = 0,
    *,
    min_per_user: int = 20,
    zipf: float = 0.8,
    sd_user: float = 0.4,
    sd_item: float = 0.5,
    sigma: float = 0.9,
    mean: float = 3.6,
) -> pd.DataFrame:
    """Simulate a rating-like crossed design shaped like MovieLens (``y ~ 1 + (1 | user) + (1 | item)``).

    Synthetic stand-in for the MovieLens data sets (which cannot be bundled): the defaults give
    the shape of MovieLens 1M (1,000,209 ratings by 6,040 users of 3,706 movies); MovieLens 32M
    with its cut-offs (users with at least 80 ratings, movies with at least 50) is about
    ``simulate_ratings(27_100_000, 94_380, 16_034, min_per_user=80)``.  Each user rates
    ``min_per_user`` items plus a heavy-tailed extra count (log-normal, scaled so that the counts,
    capped at ``n_items``, sum to about ``n_obs``), a user's items drawn without replacement with
    Zipf-like popularity (item ``k``'s weight ``k^-zipf``, in a shuffled order).  The rating is
    ``mean + user + item + ε`` with the given standard deviations (a Gaussian stand-in for the
    1–5 stars, as MixedModels.jl's benchmark fits them).

    Parameters
    ----------
    n_obs, n_users, n_items : int
        Rows (approximately: the counts are rounded), users and items.
    seed : int
        Seed of :func:`numpy.random.default_rng`.
    min_per_user : int
        Fewest ratings per user.
    zipf : float
        Exponent of the items' popularity.
    sd_user, sd_item, sigma, mean : float
        The model's standard deviations and intercept.

    Returns
    -------
    pandas.DataFrame
        Columns ``y`` (float), ``user`` and ``item`` (Categorical; items never drawn dropped), rows
        ordered by user.
    """
    rng = _checked(seed, {"n_obs": n_obs, "n_users": n_users, "n_items": n_items, "min_per_user": min_per_user},
                   {"zipf": zipf, "sd_user": sd_user, "sd_item": sd_item, "sigma": sigma}, {"mean": mean})
    if min_per_user > n_items:
        raise ArgumentError(f"min_per_user ({min_per_user}) must be at most n_items ({n_items}): a user rates an item once")
    raw = rng.lognormal(0.0, 1.15, n_users)
    jitter = rng.random(n_users)
    target = max(0, n_obs - min_per_user * n_users)
    scale = target / raw.sum()
    for _ in range(50):  # the scale that makes the capped counts sum to n_obs
        counts = np.minimum(min_per_user + np.floor(scale * raw + jitter).astype(np.int64), n_items)
        short = n_obs - int(counts.sum())
        if short <= 0 or np.all(counts == n_items):
            break
        room = raw[counts < n_items].sum()
        scale += short / room
    weights = rng.permutation(np.arange(1, n_items + 1, dtype=float) ** -zipf)
    items = _without_replacement(rng, counts, weights)
    users = np.repeat(np.arange(n_users), counts)
    return _gaussian_crossed(rng, users, items, n_users, n_items, ("user", "item"), sd_user, sd_item, sigma, mean)


def simulate_lexical_decision(
    n_subjects: int = 814,
    n_items: int = 80_962,
    per_subject: int = 3_373,
    seed: int = 0,
    *,
    sd_subject: float = 0.15,
    sd_item: float = 0.1,
    sigma: float = 0.25,
    mean: float = 6.6,
) -> pd.DataFrame:
    """Simulate a lexical-decision-like crossed design shaped like the English Lexicon Project's
    ``elp_ldt`` (``y ~ 1 + (1 | subj) + (1 | item)``).

    Synthetic stand-in for the ELP data: the defaults give its shape (814 subjects, 80,962 items,
    ~3,400 items per subject: 2,745,622 rows).  Each subject answers ``per_subject`` items (±10 %,
    uniform) drawn uniformly without replacement; the response (a log response time) is
    ``mean + subject + item + ε``.

    Parameters
    ----------
    n_subjects, n_items, per_subject : int
        Subjects, items and the mean number of items per subject.
    seed : int
        Seed of :func:`numpy.random.default_rng`.
    sd_subject, sd_item, sigma, mean : float
        The model's standard deviations and intercept.

    Returns
    -------
    pandas.DataFrame
        Columns ``y`` (float), ``subj`` and ``item`` (Categorical; items never drawn dropped), rows
        ordered by subject.
    """
    rng = _checked(seed, {"n_subjects": n_subjects, "n_items": n_items, "per_subject": per_subject},
                   {"sd_subject": sd_subject, "sd_item": sd_item, "sigma": sigma}, {"mean": mean})
    lo, hi = max(1, int(round(0.9 * per_subject))), int(round(1.1 * per_subject))
    counts = np.minimum(rng.integers(lo, hi + 1, n_subjects), n_items)
    items = _without_replacement(rng, counts, np.ones(n_items))
    subj = np.repeat(np.arange(n_subjects), counts)
    return _gaussian_crossed(rng, subj, items, n_subjects, n_items, ("subj", "item"), sd_subject, sd_item, sigma, mean)
