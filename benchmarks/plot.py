"""Plot a benchmark run: the time of each case per tool, or the scaling series.

    python benchmarks/plot.py --cases benchmarks/results/<run>.json [<run2>.json ...] docs/img/cases.png
    python benchmarks/plot.py benchmarks/results/supplement_case3_case5.json docs/img/scaling.png

``--cases``: one horizontal bar per case and tool (the median time of the whole fitting call),
log scale, the ratio to lme4 written beside sparselmm's bar; later files replace earlier ones'
rows of the same case and tool.
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


TOOLS = (("sparselmm", "C0"), ("lme4", "C2"), ("mixedlm", "C1"), ("statsmodels", "C3"))


def cases_chart(srcs: list[str], out: str) -> None:
    """The time per case and tool of the runs in ``srcs`` as one bar chart (log scale) in ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows: dict[tuple[int, str], dict] = {}
    names: dict[int, str] = {}
    for src in srcs:
        for r in json.loads(Path(src).read_text())["cases"]:
            if r.get("status") == "ok" and r.get("seconds"):
                rows[(r["case"], r["tool"])] = r
                names[r["case"]] = r["case_name"]
    cases = sorted(names)
    tools = [(t, c) for t, c in TOOLS if any((k, t) in rows for k in cases)]
    h = 0.8 / max(1, len(tools))
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(cases) * max(2, len(tools)) + 1.2))
    for j, (tool, color) in enumerate(tools):
        ys, xs = [], []
        for i, k in enumerate(cases):
            if (k, tool) in rows:
                ys.append(i + (j - (len(tools) - 1) / 2) * h)
                xs.append(rows[(k, tool)]["seconds"])
        ax.barh(ys, xs, height=h, color=color, label=tool)
        if tool == "sparselmm":
            for y, x, k in zip(ys, xs, [k for k in cases if (k, tool) in rows]):
                ref = rows.get((k, "lme4"))
                if ref:
                    ax.text(x * 1.08, y, f"{ref['seconds'] / x:.0f}× faster than lme4" if ref["seconds"] >= 2 * x
                            else f"{ref['seconds'] / x:.1f}×", va="center", fontsize=7)
    ax.set_yticks(range(len(cases)), [f"{k} {names[k]}" for k in cases], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("seconds per fit (median of the timed runs; log scale)")
    ax.grid(True, axis="x", which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(tools), frameon=False)
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    if sys.argv[1] == "--cases":
        cases_chart(sys.argv[2:-1], sys.argv[-1])
    else:
        main(sys.argv[1], sys.argv[2])
