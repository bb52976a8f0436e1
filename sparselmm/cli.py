"""The ``sparselmm`` command line (also ``python -m sparselmm``).

::

    sparselmm fit DATA "FORMULA" [--ml] [--json] [--ddf METHOD] [--factor COL ...]
    sparselmm datasets

``DATA`` is a CSV file or the name of a bundled data set (``sparselmm
datasets`` lists them).  Columns of strings stay strings, which sparselmm
treats as factors; ``--factor COL`` makes a numeric column a factor too.
Errors are reported as one line on standard error (the
:class:`~sparselmm.SparseLMMError` message, no traceback; a message of several lines,
such as a formula error's caret picture, joined into one) with exit status 1;
usage errors (also a ``--sep`` that cannot separate fields) exit with status 2.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import sys
import warnings
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

__all__ = ["main", "build_parser", "estimates"]

PROG = "sparselmm"


class _CLIError(Exception):
    """An error to report in one line."""


def _separator(text: str) -> str:
    """``--sep``: one character (taken literally), or a longer regular expression as pandas
    reads it (``'\\s+'``, ``'; *'``); an ``argparse`` usage error otherwise."""
    if text == "":
        raise argparse.ArgumentTypeError("the field separator must not be empty (e.g. ',', ';' or '\\t')")
    if text in ("\n", "\r", "\r\n"):
        raise argparse.ArgumentTypeError(f"{text!r} ends lines; it cannot separate fields")
    if len(text) > 1:
        try:
            re.compile(text)
        except re.error as exc:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a valid regular expression (a separator longer than one character "
                f"is one): {exc}"
            ) from None
    return text


_CARET = re.compile(r"^( *)\^[\^~]* *$")  # a caret, or a caret underline (^^^, ^~~)


def _one_line(message: str) -> str:
    """A message of several lines as one line.

    A formula error's picture (the formula on one line, a caret under the place at fault
    on the next) becomes ``"message: formula (at position N: 'c')"``, ``N`` counted from 0
    as in the formula's other messages; other lines are joined by ``"; "``.
    """
    lines = [ln.rstrip() for ln in str(message).splitlines()]
    lines = [ln for ln in lines if ln.strip()]
    if not lines:
        return ""
    if len(lines) >= 3 and _CARET.match(lines[-1]):
        caret = lines[-1].index("^")
        shown = lines[-2]
        # the picture indents the formula and the caret alike (two spaces in sparselmm.spec.formula)
        indent = 2 if shown.startswith("  ") and caret >= 2 else 0
        formula = shown[indent:]
        pos = caret - indent
        where = f"{formula[pos]!r}" if pos < len(formula) else "the end"
        head = "; ".join(ln.strip() for ln in lines[:-2])
        return f"{head}: {formula} (at position {pos}: {where})"
    return "; ".join(ln.strip() for ln in lines)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``sparselmm`` command."""
    from sparselmm import __version__

    p = argparse.ArgumentParser(
        prog=PROG,
        description="Linear mixed-effects models by lme4's method, from the command line.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    f = sub.add_parser(
        "fit",
        help="fit a linear mixed model and print its summary",
        description=(
            "Fit a linear mixed model to a CSV file (or a bundled data set) and print lme4's "
            "summary, or the estimates as JSON."
        ),
        epilog='example: sparselmm fit sleepstudy "Reaction ~ Days + (Days | Subject)"',
    )
    f.add_argument("data", help="CSV file, or the name of a bundled data set (see 'sparselmm datasets')")
    f.add_argument("formula", help='lme4 formula, e.g. "y ~ x + (1 | g)" (quote it)')
    f.add_argument("--ml", action="store_true", help="maximum likelihood instead of REML")
    f.add_argument("--json", action="store_true", help="print the estimates as a JSON document")
    f.add_argument(
        "--ddf",
        default="satterthwaite",
        choices=["satterthwaite", "kenward-roger", "wald"],
        help="denominator df of the t-tests in the summary (default: satterthwaite)",
    )
    f.add_argument(
        "--sep",
        default=",",
        type=_separator,
        help="field separator of the CSV file: one character, or a regular expression such as '\\s+' (default: ',')",
    )
    f.add_argument(
        "--factor",
        action="append",
        default=[],
        metavar="COL",
        help="treat this (numeric) column as a factor; may be repeated",
    )
    f.add_argument("--verbose", "-v", action="store_true", help="report the optimiser's progress")

    sub.add_parser(
        "datasets",
        help="list the bundled data sets",
        description="List the bundled data sets with their numbers of rows and columns.",
    )
    return p


def _read_data(source: str, sep: str) -> pd.DataFrame:
    """A CSV file if ``source`` is a path that exists, else a bundled data set of that name."""
    from sparselmm import datasets

    path = Path(source)
    if path.is_file():
        try:
            # a separator of several characters is a regular expression, which only the python engine reads
            return pd.read_csv(path, sep=sep, engine="python" if len(sep) > 1 else None)
        except (ValueError, csv.Error, re.error, UnicodeDecodeError, OSError) as exc:  # pandas' are ValueErrors
            raise _CLIError(f"cannot read {source} as CSV with --sep {sep!r}: {exc}") from exc
    if path.exists():
        raise _CLIError(f"{source} is not a file")
    if source in datasets.names():
        return datasets.load(source)
    raise _CLIError(
        f"no file {source!r} and no bundled data set of that name; "
        f"bundled data sets: {', '.join(datasets.names())}"
    )


def _clean(x: Any) -> Any:
    """JSON-safe values: NaN and infinities become null, numpy scalars Python numbers."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if x is None or isinstance(x, (bool, str)):
        return x
    if hasattr(x, "item"):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if x is pd.NA:
        return None
    return x


def estimates(m: Any) -> dict[str, Any]:
    """The estimates of a fitted model as a JSON-ready dict.

    Keys: ``formula``, ``REML``, ``fixef``, ``se`` (dicts by R's coefficient
    names), ``theta`` (lme4's layout), ``sigma``, ``objective``, ``loglik``,
    ``aic``, ``bic``, ``deviance``, ``varcorr`` (records of
    ``as.data.frame(VarCorr(m))``: ``grp, var1, var2, vcov, sdcor``),
    ``ngroups``, ``nobs``, ``converged``, ``singular``, ``warnings``.
    NaN values become ``null``.
    """
    vc = m.varcorr()
    return _clean(
        {
            "formula": m.formula,
            "REML": m.REML,
            "fixef": m.fixef.to_dict(),
            "se": m.se.to_dict(),
            "theta": list(m.theta),
            "sigma": m.sigma,
            "objective": m.objective,
            "loglik": m.loglik,
            "aic": m.aic,
            "bic": m.bic,
            "deviance": m.deviance,
            "varcorr": vc.to_dict(orient="records"),
            "ngroups": dict(m.ngroups),
            "nobs": m.nobs,
            "converged": m.converged,
            "singular": m.singular,
            "warnings": list(m.optsum.warnings),
        }
    )


def _fit(args: argparse.Namespace) -> int:
    from sparselmm import lmer

    df = _read_data(args.data, args.sep)
    for col in args.factor:
        if col not in df.columns:
            raise _CLIError(f"--factor {col}: no column {col!r} in the data; columns are {list(df.columns)}")
        df[col] = df[col].astype(str)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = lmer(args.formula, df, REML=not args.ml, verbose=args.verbose)
        text = None if args.json else m.summary(ddf=args.ddf)
    for w in caught:
        print(f"{PROG}: warning: {_one_line(str(w.message))}", file=sys.stderr)
    if args.json:
        print(json.dumps(estimates(m), indent=2))
    else:
        print(text)
    return 0


def _datasets(args: argparse.Namespace) -> int:
    from sparselmm import datasets

    rows = []
    for name in datasets.names():
        df = datasets.load(name)
        rows.append((name, df.shape[0], df.shape[1]))
    w = max(len(r[0]) for r in rows)
    print(f"{'name':<{w}}  {'rows':>7}  {'columns':>7}")
    for name, n, k in rows:
        print(f"{name:<{w}}  {n:>7}  {k:>7}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``sparselmm`` command; returns the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 1 when the input cannot be used (bad file, formula or
        column), 2 for a usage error.
    """
    from sparselmm.errors import SparseLMMError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return int(exc.code) if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    handler = {"fit": _fit, "datasets": _datasets}[args.command]
    try:
        return handler(args)
    except (SparseLMMError, _CLIError) as exc:
        print(f"{PROG}: error: {_one_line(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which has quit
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
