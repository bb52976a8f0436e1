"""Plot the scaling series of a benchmark run: per-θ cost and design time against n.

    python benchmarks/plot.py benchmarks/results/supplement_case3_case5.json docs/img/scaling.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(src: str, out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in json.loads(Path(src).read_text())["scaling"] if r.get("status", "ok") == "ok"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for tool, style, color in (("sparselmm", "o-", "C0"), ("sparselmm[cholmod]", "s--", "C1"), ("lme4", "^-", "C2")):
        rs = sorted((r for r in rows if r["tool"] == tool and "ms_per_eval_mean" in r), key=lambda r: r["n"])
        if not rs:
            continue
        n = [r["n"] for r in rs]
        axes[0].loglog(n, [r["ms_per_eval_mean"] for r in rs], style, color=color, label=tool)
        if tool != "sparselmm[cholmod]":
            axes[1].loglog(n, [r["design_seconds"] for r in rs], style, color=color, label=tool)
    axes[0].set(xlabel="observations n", ylabel="ms per evaluation at fixed θ", title="cost per θ")
    axes[1].set(xlabel="observations n", ylabel="seconds", title="building the model (once)")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("y ~ 1 + x + (1 | a) + (1 | b), 2,000 × 500 levels, ML", fontsize=10)
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
