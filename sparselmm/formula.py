"""Parse lme4 formula strings.

Splits ``"y ~ fixed + (lhs | g) + ..."`` into the response, the fixed-effects
part (handed to formulaic with R's semantics) and the random-effects bar
terms, expanding lme4's shorthands on the way:

* ``(x || g)``  ->  ``(1 | g) + (0 + x | g)`` (lme4's ``expandDoubleVert``);
* ``(1 | a/b)`` ->  ``(1 | a) + (1 | b:a)`` (lme4 names the nested factor ``b:a``);
* ``(1 | a:b)`` ->  one term whose grouping factor is the interaction of ``a`` and ``b``;
* ``cs(0 + f | g)``, ``ar1(...)``, ... -> a bar term with a covariance structure
  (glmmTMB's spelling; see :mod:`sparselmm.covariance`).

Errors are :class:`~sparselmm.errors.FormulaError` and show the formula with a
caret under the offending place.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from .errors import FormulaError

__all__ = ["BarTerm", "ParsedFormula", "parse_formula", "STRUCTURES"]

#: covariance structure wrappers accepted around a bar term (glmmTMB's names)
STRUCTURES = ("us", "diag", "homdiag", "cs", "homcs", "ar1", "toep", "homtoep")

_NAME = re.compile(r"[A-Za-z_.][A-Za-z0-9_.]*|`[^`]+`")


@dataclass(frozen=True)
class BarTerm:
    """One random-effects term ``(lhs | group)`` after expansion.

    Attributes
    ----------
    lhs : str
        The model formula of the term's columns, in R syntax (``"1 + Days"``, ``"0 + x"``).
    factors : tuple of str
        Columns whose interaction is the grouping factor, in the order of the
        name (``("cask", "batch")`` for ``cask:batch``).
    structure : str
        Covariance structure: ``"us"`` (unstructured, plain bars) or one of :data:`STRUCTURES`.
    text : str
        The term as the user wrote it, for messages.
    """

    lhs: str
    factors: tuple[str, ...]
    structure: str = "us"
    text: str = ""

    @property
    def group(self) -> str:
        """Name of the grouping factor as lme4 prints it (``"cask:batch"``)."""
        return ":".join(self.factors)


@dataclass(frozen=True)
class ParsedFormula:
    """A formula split into response, fixed part and bar terms.

    Attributes
    ----------
    formula : str
        The formula as given.
    response : str
        The response expression (left of ``~``).
    fixed : str
        The fixed-effects right-hand side in R syntax (``"1"`` when only bar terms were given).
    bars : tuple of BarTerm
        The random-effects terms in the order written, after expansion.
    """

    formula: str
    response: str
    fixed: str
    bars: tuple[BarTerm, ...] = field(default_factory=tuple)


def _caret(formula: str, pos: int, msg: str) -> FormulaError:
    return FormulaError(f"{msg}\n  {formula}\n  {' ' * max(pos, 0)}^")


def _check_parens(formula: str) -> None:
    stack: list[int] = []
    for i, ch in enumerate(formula):
        if ch == "(":
            stack.append(i)
        elif ch == ")":
            if not stack:
                raise _caret(formula, i, "unbalanced parentheses: ')' without a matching '('")
            stack.pop()
    if stack:
        raise _caret(formula, stack[-1], "unbalanced parentheses: '(' is never closed")


def _split_top(text: str, offset: int) -> list[tuple[str, str, int]]:
    """Split ``text`` at top-level ``+`` and ``-``: (sign, piece, start position)."""
    pieces: list[tuple[str, str, int]] = []
    depth, start, sign = 0, 0, "+"
    for i, ch in enumerate(text):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif depth == 0 and ch in "+-":
            # a '-' right after '~', '(' or an operator is part of the piece (unary minus)
            prev = text[:i].rstrip()
            if ch == "-" and prev and prev[-1] in "*/:^,":
                continue
            pieces.append((sign, text[start:i], offset + start))
            sign, start = ch, i + 1
    pieces.append((sign, text[start:], offset + start))
    out = []
    for s, p, pos in pieces:
        stripped = p.strip()
        if stripped:
            out.append((s, stripped, pos + (len(p) - len(p.lstrip()))))
        elif not (s == "+" and pos == offset and not out):  # empty leading piece is fine
            if stripped == "" and (out or s == "-"):
                raise FormulaError(f"empty term in formula near position {pos}: {text!r}")
    return out


def _top_level_index(text: str, token: str) -> int:
    """Index of the first top-level occurrence of ``token`` in ``text``, or -1."""
    depth = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif depth == 0 and text.startswith(token, i):
            return i
        i += 1
    return -1


def _bar_piece(piece: str) -> tuple[str, str] | None:
    """If ``piece`` is a bar term ``(…|…)`` or ``struct(…|…)``, return (structure, inside)."""
    m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)?\s*\((.*)\)", piece, flags=re.S)
    if not m:
        return None
    inner = m.group(2)
    # the outer parentheses must enclose the whole piece
    depth = 0
    for ch in inner:
        depth += ch == "("
        depth -= ch == ")"
        if depth < 0:
            return None
    if _top_level_index(inner, "|") < 0:
        return None
    return (m.group(1) or "", inner)


def _grouping_factors(formula: str, expr: str, pos: int) -> list[tuple[str, ...]]:
    """Expand a grouping expression: ``g``, ``a:b``, ``a/b`` (-> ``a``, ``b:a``), ``a/b/c``."""
    expr = expr.strip()
    if not expr:
        raise _caret(formula, pos, "bar term without a grouping factor after '|'")
    parts = [p.strip() for p in expr.split("/")]
    out: list[tuple[str, ...]] = []
    outer: tuple[str, ...] = ()
    for p in parts:
        names = tuple(n.strip().strip("`") for n in p.split(":"))
        for n in names:
            if not n or not _NAME.fullmatch(n) and not _NAME.fullmatch(f"`{n}`"):
                raise _caret(
                    formula,
                    pos,
                    f"grouping factor {expr!r} must be a column name, an interaction a:b or a nesting a/b;"
                    " compute other expressions as a column of the data first",
                )
            if re.search(r"[()+*^\-\s]", n):
                raise _caret(formula, pos, f"grouping factor {expr!r} is an expression; make it a column first")
        outer = names + outer if outer else names
        out.append(outer)
    return out[::-1]  # lme4's expandSlash puts the innermost term first: (1|b:a) + (1|a)


def _expand_double_vert(lhs: str) -> list[str]:
    """lme4's ``expandDoubleVert``: ``1 + x + z`` -> ``["1", "0 + x", "0 + z"]``."""
    from formulaic import Formula  # local: formulaic is slow to import

    try:
        terms = [str(t) for t in Formula(lhs)]
    except Exception as exc:  # formulaic's own parse errors
        raise FormulaError(f"cannot parse the left side {lhs!r} of a '||' term: {exc}") from exc
    out = ["1"] if "1" in terms else []
    out += [f"0 + {t}" for t in terms if t != "1"]
    return out


def parse_formula(formula: str) -> ParsedFormula:
    """Split an lme4 formula string into response, fixed part and bar terms.

    Parameters
    ----------
    formula : str
        As written in R, e.g. ``"Reaction ~ Days + (Days | Subject)"``.

    Returns
    -------
    ParsedFormula

    Raises
    ------
    FormulaError
        For unbalanced parentheses, a missing ``~`` or response, a bar term
        without a left side or a grouping factor, a grouping factor that is
        an expression, or a random term that is subtracted or multiplied.
    """
    if not isinstance(formula, str):
        raise FormulaError(f"the formula must be a string like 'y ~ x + (1 | g)', got {type(formula).__name__}")
    return _parse_formula(formula)


@functools.lru_cache(maxsize=256)
def _parse_formula(formula: str) -> ParsedFormula:
    """:func:`parse_formula` of a string, remembered (the result is immutable; a refit or a
    benchmark parses the same formula again, ~0.4 ms each)."""
    _check_parens(formula)
    tilde = _top_level_index(formula, "~")
    if tilde < 0:
        raise _caret(formula, len(formula), "a formula needs '~' between the response and the predictors")
    response = formula[:tilde].strip()
    if not response:
        raise _caret(formula, tilde, "the formula has no response left of '~'")
    rhs = formula[tilde + 1 :]
    if _top_level_index(rhs, "~") >= 0:
        raise _caret(formula, tilde + 1 + _top_level_index(rhs, "~"), "a formula has one '~'")
    if not rhs.strip():
        raise _caret(formula, len(formula), "the formula has no right-hand side after '~'")

    fixed_parts: list[str] = []
    bars: list[BarTerm] = []
    for sign, piece, pos in _split_top(rhs, tilde + 1):
        bp = _bar_piece(piece)
        if bp is None:
            if "|" in piece:
                where = pos + piece.index("|")
                raise _caret(
                    formula,
                    where,
                    "a bar term must be a whole term in its own parentheses, like '(1 | g)', joined to the rest by '+'",
                )
            fixed_parts.append(("- " if sign == "-" else "+ ") + piece)
            continue
        struct, inner = bp
        if sign == "-":
            raise _caret(formula, pos, f"a random-effects term cannot be subtracted: -{piece}")
        if struct and struct not in STRUCTURES:
            raise _caret(
                formula,
                pos,
                f"unknown covariance structure {struct!r} around a bar term; use one of {', '.join(STRUCTURES)}",
            )
        double = _top_level_index(inner, "||")
        bar_at = double if double >= 0 else _top_level_index(inner, "|")
        lhs = inner[:bar_at].strip()
        grp = inner[bar_at + (2 if double >= 0 else 1) :]
        inner_pos = pos + piece.index("(") + 1
        if not lhs:
            raise _caret(formula, inner_pos, "bar term without a left side: write (1 | g) for a random intercept")
        if _top_level_index(grp, "|") >= 0:
            raise _caret(formula, inner_pos + bar_at, "a bar term has one '|' (or one '||')")
        groups = _grouping_factors(formula, grp, inner_pos + bar_at + 1)
        lhss = _expand_double_vert(lhs) if double >= 0 else [lhs]
        structure = struct or "us"
        for factors in groups:
            for one in lhss:
                bars.append(BarTerm(lhs=one, factors=factors, structure=structure, text=piece))
    fixed = " ".join(fixed_parts).strip()
    if fixed.startswith("+ "):
        fixed = fixed[2:]
    if not fixed:
        fixed = "1"
    elif fixed.startswith("- "):
        fixed = "1 " + fixed
    return ParsedFormula(formula=formula, response=response, fixed=fixed, bars=tuple(bars))
