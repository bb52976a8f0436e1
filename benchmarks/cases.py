"""The benchmark cases of issue 8: data, formula, criterion, and each peer's spelling.

Every case is rebuilt deterministically from its definition, so the runner,
each per-fit subprocess and the R script all fit the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import pandas as pd


def _sleepstudy() -> pd.DataFrame:
    import sparselmm as slm

    return slm.datasets.load("sleepstudy")


def _timss() -> pd.DataFrame:
    import sparselmm as slm

    return slm.group_center(slm.datasets.load_timss(), ["math", "hoursTV"], "idschool")


def _insteval() -> pd.DataFrame:
    import sparselmm as slm

    return slm.datasets.load("InstEval")


def _crossed_1m() -> pd.DataFrame:
    import sparselmm as slm

    return slm.datasets.simulate_crossed(1_000_000, 20_000, 5_000, seed=1)


def _ratings_1m() -> pd.DataFrame:
    import sparselmm as slm

    return slm.datasets.simulate_ratings(seed=1)


def _elp() -> pd.DataFrame:
    import sparselmm as slm

    return slm.datasets.simulate_lexical_decision(seed=1)


def _ratings_32m() -> pd.DataFrame:
    # the Parquet parts of benchmarks/movielens32.py (made on first use, ~1 min, 0.3 GB on disk)
    from pathlib import Path

    from .movielens32 import DEFAULT_DIR, generate

    folder = Path(DEFAULT_DIR) / "parts"
    generate(folder)
    return pd.read_parquet(folder)


@dataclass(frozen=True)
class Case:
    """One row group of the table.

    ``statsmodels`` is ``None`` when statsmodels is not attempted (with the
    reason in ``statsmodels_skip``), else the keyword arguments of
    ``statsmodels.formula.api.mixedlm`` (``groups`` and ``vc_formula`` may name
    columns; ``"__one__"`` is a constant column added for crossed designs).
    """

    id: int
    name: str
    formula: str
    REML: bool
    load: Callable[[], pd.DataFrame]
    factors: tuple[str, ...]
    columns: tuple[str, ...]
    statsmodels: dict[str, Any] | None = None
    statsmodels_skip: str = ""
    lme4_skip: str = ""
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def criterion(self) -> str:
        return "REML criterion" if self.REML else "deviance"


CASES: dict[int, Case] = {
    1: Case(
        1,
        "sleepstudy",
        "Reaction ~ Days + (Days | Subject)",
        True,
        _sleepstudy,
        ("Subject",),
        ("Reaction", "Days", "Subject"),
        statsmodels=dict(formula="Reaction ~ Days", groups="Subject", re_formula="~Days"),
    ),
    2: Case(
        2,
        "TIMSS surrogate",
        "science ~ 1 + grpCmath + grpMmath + grade + gender + grpChoursTV + grpMhoursTV"
        " + (grpCmath + grpChoursTV | idschool)",
        False,
        _timss,
        ("idschool", "grade", "gender"),
        ("science", "grpCmath", "grpMmath", "grade", "gender", "grpChoursTV", "grpMhoursTV", "idschool"),
        statsmodels=dict(
            formula="science ~ 1 + grpCmath + grpMmath + grade + gender + grpChoursTV + grpMhoursTV",
            groups="idschool",
            re_formula="~grpCmath + grpChoursTV",
        ),
    ),
    3: Case(
        3,
        "InstEval",
        "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept)",
        False,
        _insteval,
        ("s", "d", "service", "dept"),
        ("y", "service", "s", "d", "dept"),
        # statsmodels has no crossed random effects: one group spanning all rows
        # with three variance components (its documented idiom).
        statsmodels=dict(
            formula="y ~ 1 + service",
            groups="__one__",
            re_formula="0",
            vc_formula={"s": "0 + C(s)", "d": "0 + C(d)", "dept": "0 + C(dept)"},
        ),
    ),
    4: Case(
        4,
        "crossed 1M",
        "y ~ 1 + x + (1 | a) + (1 | b)",
        False,
        _crossed_1m,
        ("a", "b"),
        ("y", "x", "a", "b"),
        statsmodels=None,
        statsmodels_skip="not attempted: crossed effects need one all-rows group with dense "
        "variance-component designs (1M x 25,000), beyond memory",
        notes="simulate_crossed(1_000_000, 20_000, 5_000, seed=1)",
    ),
    6: Case(
        6,
        "MovieLens-1M shape",
        "y ~ 1 + (1 | user) + (1 | item)",
        False,
        _ratings_1m,
        ("user", "item"),
        ("y", "user", "item"),
        statsmodels=None,
        statsmodels_skip="not attempted: crossed effects (one all-rows group, 1M x 9,746 dense designs)",
        notes="simulate_ratings(seed=1): synthetic, MovieLens 1M's shape (1.0M rows, 6,040 users with heavy-tailed "
        "counts x 3,706 Zipf-popular items); MixedModels.jl's published fit of the real data: 40.9 s "
        "(49 evaluations x 0.77 s, 4 threads)",
    ),
    7: Case(
        7,
        "ELP shape",
        "y ~ 1 + (1 | item) + (1 | subj)",
        False,
        _elp,
        ("subj", "item"),
        ("y", "subj", "item"),
        statsmodels=None,
        statsmodels_skip="not attempted: crossed effects (one all-rows group, 2.7M x 81,776 dense designs)",
        notes="simulate_lexical_decision(seed=1): synthetic, elp_ldt's shape (2.75M rows, 80,962 items x 814 "
        "subjects); MixedModels.jl's published fit of the real data: 8.2 s (61 evaluations x 0.12 s)",
    ),
    # opt-in (not in the default list): ~6 min per fit and ~7.5 GB; benchmarks/movielens32.py adds the
    # Dask fit and the subsample beside lme4
    8: Case(
        8,
        "MovieLens-32M shape",
        "y ~ 1 + (1 | user) + (1 | item)",
        False,
        _ratings_32m,
        ("user", "item"),
        ("y", "user", "item"),
        statsmodels=None,
        statsmodels_skip="not attempted: crossed effects (one all-rows group, 27M x 110,414 dense designs)",
        lme4_skip="not attempted: lme4's fit of 27M rows takes hours on 2 cores; benchmarks/movielens32.py "
        "checks the optimum against lme4 on a subsample",
        notes="simulate_ratings(27_100_000, 94_380, 16_034, seed=1, min_per_user=80): synthetic, the shape of "
        "MovieLens 32M with its cut-offs (users >= 80 ratings, movies >= 50); MixedModels.jl's published fit of "
        "the real data: 1,945 s (42 evaluations x 45 s, 16 threads)",
    ),
}

# Case 5: scaling series with fixed levels.
SCALING_FORMULA = "y ~ 1 + x + (1 | a) + (1 | b)"
SCALING_LEVELS = (2_000, 500)
SCALING_THETA = (1.0, 0.5)  # the simulation's sd_a / sigma, sd_b / sigma
SCALING_N = (100_000, 1_000_000)
SCALING_N_BIG = (10_000_000,)


def scaling_data(n: int) -> pd.DataFrame:
    import sparselmm as slm

    return slm.datasets.simulate_crossed(n, SCALING_LEVELS[0], SCALING_LEVELS[1], seed=1)
