"""The lecture's TIMSS analyses: students nested in schools.

Run as a script (``python docs/examples/timss.py [path/to/timss1997.txt]``) or
import :func:`main`.  Without a path the bundled synthetic surrogate is used;
with the real ``timss1997.txt`` the same code reproduces the lecture.
All models are fitted by maximum likelihood, as in the lecture, so that
likelihood-ratio tests between models with different fixed effects are valid.
"""

from __future__ import annotations

import sys
import warnings

import sparselmm as slm

FIXED = "science ~ 1 + grpCmath + grpMmath + grade + gender + grpChoursTV + grpMhoursTV"

MODELS = {
    # random-intercept (one-way random-effects ANOVA) model
    "ramod": "science ~ 1 + (1 | idschool)",
    # random intercepts with level-1 predictors
    "rimod": "science ~ 1 + math + (1 | idschool)",
    "ri2mod": "science ~ 1 + grpCmath + grpMmath + (1 | idschool)",
    "ri3mod": "science ~ 1 + grpCmath + grpMmath + grade + (1 | idschool)",
    "ri4mod": "science ~ 1 + grpCmath + grpMmath + grade + gender + (1 | idschool)",
    "ri5mod": FIXED + " + (1 | idschool)",
    # random slopes: unstructured, variance components (||), intercept apart
    "risucmod": FIXED + " + (grpCmath + grpChoursTV | idschool)",
    "risvcmod": FIXED + " + (grpCmath + grpChoursTV || idschool)",
    "risicmod": FIXED + " + (1 | idschool) + (0 + grpCmath + grpChoursTV | idschool)",
}

# the likelihood-ratio tests of the lecture: each model against the one it extends
COMPARISONS = [
    ("ramod", "rimod"),
    ("rimod", "ri2mod"),
    ("ri2mod", "ri3mod"),
    ("ri3mod", "ri4mod"),
    ("ri4mod", "ri5mod"),
    ("ri5mod", "risvcmod"),
    ("ri5mod", "risicmod"),
    ("risvcmod", "risucmod"),
    ("risicmod", "risucmod"),
]


def main(path: str | None = None, verbose: bool = True) -> dict:
    """Fit every model of the lecture and run its likelihood-ratio tests.

    Returns
    -------
    dict
        ``{"data": DataFrame, "models": {name: LinearMixedModel}, "anova": {(a, b): DataFrame}}``
    """
    timss = slm.datasets.load_timss(path)
    # level-1 / level-2 split: school means and within-school deviations
    timss = slm.group_center(timss, ["math", "hoursTV"], by="idschool")
    models = {}
    for name, formula in MODELS.items():
        with warnings.catch_warnings():
            warnings.simplefilter("error", slm.ConvergenceWarning)  # no false alarms expected
            models[name] = slm.lmer(formula, timss, REML=False)
        if verbose:
            print(f"\n==== {name} ====")
            print(models[name].summary())
    tables = {}
    for a, b in COMPARISONS:
        tables[(a, b)] = slm.anova(models[a], models[b], names=[a, b])
        if verbose:
            print(f"\n==== anova({a}, {b}) ====")
            print(tables[(a, b)].to_string())
    # intraclass correlation of the empty model
    vc = models["ramod"].varcorr()
    icc = vc["vcov"].iloc[0] / vc["vcov"].sum()
    if verbose:
        print(f"\nintraclass correlation (ramod): {icc:.3f}")
    return {"data": timss, "models": models, "anova": tables, "icc": icc}


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
