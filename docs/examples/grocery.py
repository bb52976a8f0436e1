"""The lecture's grocery prices: one-way repeated-measures ANOVA, two ways.

Ten items (the subjects) priced in four stores (the conditions).  First the
classical route, ``aov1rm``'s F test with Greenhouse–Geisser and Huynh–Feldt
corrections; then the mixed-model route, a likelihood-ratio test of the store
effect with a random intercept per item.  Run as a script or import :func:`main`.
"""

from __future__ import annotations

import sparselmm as slm


def main(verbose: bool = True) -> dict:
    """Run both analyses; return the RM-ANOVA result, the two models and the LRT table."""
    grocery = slm.datasets.load("grocery")  # long form: price, item, store
    wide = grocery.pivot(index="item", columns="store", values="price")
    if verbose:
        print(wide.to_string(), "\n")

    # classical repeated-measures ANOVA (the lecture's aov1rm)
    rm = slm.rm_anova(grocery, subject="item", condition="store", value="price")
    if verbose:
        print(rm, "\n")

    # the same question as a mixed model, by maximum likelihood
    m0 = slm.lmer("price ~ 1 + (1 | item)", grocery, REML=False)
    m1 = slm.lmer("price ~ store + (1 | item)", grocery, REML=False)
    lrt = slm.anova(m0, m1, names=["m0", "m1"])
    if verbose:
        print(m1.summary(), "\n")
        print(lrt.to_string())
    return {"rm_anova": rm, "m0": m0, "m1": m1, "anova": lrt}


if __name__ == "__main__":
    main()
