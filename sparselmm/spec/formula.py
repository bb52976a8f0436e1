"""Parse lme4 formula strings.

Splits ``"y ~ fixed + (lhs | g) + ..."`` into the response, the fixed-effects
part (handed to formulaic with R's semantics) and the random-effects bar
terms, expanding lme4's shorthands on the way:

* ``(x || g)``  ->  ``(1 | g) + (0 + x | g)`` (lme4's ``expandDoubleVert``);
* ``(1 | a/b)`` ->  ``(1 | a) + (1 | b:a)`` (lme4 names the nested factor ``b:a``);
* ``(1 | a:b)`` ->  one term whose grouping factor is the interaction of ``a`` and ``b``;
* ``cs(0 + f | g)``, ``ar1(...)``, ... -> a bar term with a covariance structure
  (glmmTMB's spelling; see :mod:`sparselmm.spec.covariance`).

Characters inside back-quotes (`` `x-y` ``, a column name) and inside quoted
strings are never operators. Errors are :class:`~sparselmm.errors.FormulaError`
and show the formula with a caret under the offending place. What the pieces
may contain (functions, operators, names) is checked by
:mod:`sparselmm.spec.vocabulary` against the data's columns.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Iterator, NamedTuple

from sparselmm.errors import FormulaError
from sparselmm.spec.covariance import STRUCTURE_CLASSES

__all__ = ["BarTerm", "Fragment", "ParsedFormula", "parse_formula", "update_formula"]


#: an R name: letters, digits, "." and "_"
BARE_NAME = re.compile(r"(?:[^\W\d]|\.)[\w.]*")


class Fragment(NamedTuple):
    """A piece of the formula as written, for the vocabulary check and its caret.

    Attributes
    ----------
    role : str
        ``"response"``, ``"fixed"`` (one top-level term of the fixed part), ``"offset"``
        (the expression inside an ``offset()`` term) or ``"bar"`` (a bar term's left side,
        before ``||`` is expanded).
    text : str
        The piece, verbatim.
    start : int
        Where it starts in the formula.
    """

    role: str
    text: str
    start: int


def _quoted_spans(text: str) -> Iterator[tuple[int, int]]:
    """(opening, closing) positions of each back-quoted name and quoted string in ``text``;
    ``closing == len(text)`` when it is never closed. Strings may escape their quote with
    a backslash; back-quoted names may not."""
    i, n = 0, len(text)
    while i < n:
        q = text[i]
        if q in "`'\"":
            j = i + 1
            while j < n and text[j] != q:
                j += 2 if q != "`" and text[j] == "\\" else 1
            yield i, min(j, n)
            i = j + 1
        else:
            i += 1


def _mask(text: str) -> str:
    """``text`` with the characters inside back-quotes and quoted strings replaced by ``_``.

    The delimiters stay and so does the length, so a position found in the mask
    is the same position in ``text``: scanning the mask for operators, parentheses
    and bars never looks inside a name or a string.
    """
    if "`" not in text and "'" not in text and '"' not in text:
        return text
    out = list(text)
    for i, j in _quoted_spans(text):
        out[i + 1 : j] = "_" * (j - i - 1)
    return "".join(out)


def _check_quotes(formula: str) -> None:
    """Refuse an unclosed back-quote or string, and an empty back-quoted name."""
    for i, j in _quoted_spans(formula):
        if j == len(formula):
            what = "back-quoted name" if formula[i] == "`" else "string"
            raise caret(formula, i, f"unclosed {what}: {formula[i]} is never closed")
        if formula[i] == "`" and j == i + 1:
            raise caret(formula, i, "empty back-quoted name ``")


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
        Covariance structure: ``"us"`` (unstructured, plain bars) or a name of :data:`sparselmm.spec.covariance.STRUCTURE_CLASSES`.
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
    fragments : tuple of Fragment
        The response, each term of the fixed part and each bar term's left
        side as written, with their positions in ``formula``.
    offsets : tuple of str
        The expressions of the fixed part's ``offset(...)`` terms (R's: added to the linear
        predictor with coefficient 1, never columns of X).
    """

    formula: str
    response: str
    fixed: str
    bars: tuple[BarTerm, ...] = field(default_factory=tuple)
    fragments: tuple[Fragment, ...] = field(default=(), compare=False, repr=False)
    offsets: tuple[str, ...] = ()


def caret(formula: str, pos: int, msg: str) -> FormulaError:
    """A :class:`FormulaError` whose message shows ``formula`` with a caret under position ``pos``."""
    return FormulaError(f"{msg}\n  {formula}\n  {' ' * max(pos, 0)}^")


def _check_parens(formula: str) -> None:
    _check_quotes(formula)
    stack: list[int] = []
    for i, ch in enumerate(_mask(formula)):
        if ch == "(":
            stack.append(i)
        elif ch == ")":
            if not stack:
                raise caret(formula, i, "unbalanced parentheses: ')' without a matching '('")
            stack.pop()
    if stack:
        raise caret(formula, stack[-1], "unbalanced parentheses: '(' is never closed")


def split_top(text: str, offset: int) -> list[tuple[str, str, int]]:
    """Split ``text`` at top-level ``+`` and ``-``.

    Parameters
    ----------
    text : str
        A sum of terms (a formula's right-hand side, or part of it).
    offset : int
        Position of ``text`` in the formula (the positions returned count from there).

    Returns
    -------
    list of (str, str, int)
        ``(sign, piece, start position)`` of each non-empty piece.

    Raises
    ------
    FormulaError
        For an empty term (``a + + b``).
    """
    pieces: list[tuple[str, str, int]] = []
    depth, start, sign = 0, 0, "+"
    masked = _mask(text)
    for i, ch in enumerate(masked):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif depth == 0 and ch in "+-":
            # a '-' right after '~', '(' or an operator is part of the piece (unary minus)
            prev = masked[:i].rstrip()
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
    """Index of the first top-level occurrence of ``token`` in ``text`` (outside
    parentheses, back-quotes and strings), or -1."""
    text = _mask(text)
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
    m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)?\s*\((.*)\)", _mask(piece), flags=re.S)
    if not m:
        return None
    inner = piece[m.start(2) : m.end(2)]
    # the outer parentheses must enclose the whole piece
    depth = 0
    for ch in m.group(2):
        depth += ch == "("
        depth -= ch == ")"
        if depth < 0:
            return None
    if _top_level_index(inner, "|") < 0:
        # redundant parentheses around a bar term, ((1 | g)), as R reads them
        return _bar_piece(inner.strip()) if not m.group(1) else None
    return (m.group(1) or "", inner)


def _split_outside(text: str, sep: str, start: int) -> list[tuple[str, int]]:
    """Split ``text`` at each ``sep`` outside back-quotes and strings: (stripped piece, its position),
    positions counted from ``start``."""
    out, begin = [], 0
    masked = _mask(text)
    for i in [i for i, ch in enumerate(masked) if ch == sep] + [len(text)]:
        piece = text[begin:i]
        out.append((piece.strip(), start + begin + len(piece) - len(piece.lstrip())))
        begin = i + 1
    return out


def _grouping_factors(formula: str, expr: str, pos: int) -> list[tuple[str, ...]]:
    """Expand a grouping expression: ``g``, ``a:b``, ``a/b`` (-> ``a``, ``b:a``), ``a/b/c``;
    a back-quoted name (`` `my group` ``) is one column, whatever it holds."""
    if not expr.strip():
        raise caret(formula, pos, "bar term without a grouping factor after '|'")
    out: list[tuple[str, ...]] = []
    outer: tuple[str, ...] = ()
    for p, p_at in _split_outside(expr, "/", pos):
        names: list[str] = []
        for n, at in _split_outside(p, ":", p_at):
            if len(n) > 2 and n[0] == n[-1] == "`" and "`" not in n[1:-1]:
                names.append(n[1:-1])
                continue
            if not BARE_NAME.fullmatch(n):
                if n and not re.search(r"[()`'\"]", n) and re.search(r"[+*^\-\s]", n):
                    msg = (
                        f"grouping factor {expr.strip()!r} is an expression; make it a column first"
                        f" (a column whose name has such characters is written in back-quotes: `{n}`)"
                    )
                else:
                    msg = (
                        f"grouping factor {expr.strip()!r} must be a column name, an interaction a:b or a"
                        " nesting a/b; compute other expressions as a column of the data first"
                    )
                raise caret(formula, at, msg)
            names.append(n)
        outer = tuple(names) + outer if outer else tuple(names)
        out.append(outer)
    return out[::-1]  # lme4's expandSlash puts the innermost term first: (1|b:a) + (1|a)


def _expand_double_vert(lhs: str, formula: str = "", pos: int = 0) -> list[str]:
    """lme4's ``expandDoubleVert``: ``1 + x + z`` -> ``["1", "0 + x", "0 + z"]``.

    The terms are formulaic's expansion of ``lhs`` (``x*z`` -> ``x``, ``z``, ``x:z``);
    a name that formulaic looked up is back-quoted again when it is not a plain name.
    Whatever formulaic raises becomes a FormulaError, with a caret at ``pos`` in ``formula``.
    """
    from formulaic import Formula  # local: formulaic is slow to import

    def factor(f: object) -> str:
        expr = str(getattr(f, "expr"))
        lookup = str(getattr(getattr(f, "eval_method"), "value", "")) == "lookup"
        return f"`{expr}`" if lookup and not BARE_NAME.fullmatch(expr) else expr

    try:
        terms = [":".join(factor(f) for f in t.factors) for t in Formula(lhs)]
    except Exception as exc:  # formulaic's own parse errors, whatever their class
        # its first line, without the coloured picture of the place that follows it
        why = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip().split("\n")[0] or type(exc).__name__
        msg = f"cannot read the left side {lhs!r} of a '||' term: {why}"
        raise (caret(formula, pos, msg) if formula else FormulaError(msg)) from None
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
        For unbalanced parentheses, an unclosed back-quote or string, a
        missing ``~`` or response, a ``~`` or ``|`` inside the response or a bar
        term's left side, a bar term without a left side or a grouping factor,
        a grouping factor that is an expression, a random term that is
        subtracted or multiplied, or a ``||`` left side that formulaic cannot
        expand.

    Notes
    -----
    Only the structure is read here; what the pieces may contain (functions,
    operators, names) is checked against the data by
    :func:`sparselmm.spec.vocabulary.needed_variables`, using the positions kept in
    :attr:`ParsedFormula.fragments`.
    """
    if not isinstance(formula, str):
        raise FormulaError(f"the formula must be a string like 'y ~ x + (1 | g)', got {type(formula).__name__}")
    return _parse_formula(formula)


@functools.lru_cache(maxsize=256)
def _parse_formula(formula: str) -> ParsedFormula:
    """:func:`parse_formula` of a string, remembered (the result is immutable; a refit or a
    benchmark parses the same formula again, ~0.4 ms each)."""
    _check_parens(formula)
    masked = _mask(formula)
    tilde = _top_level_index(formula, "~")
    if tilde < 0:
        if "~" in masked:
            raise caret(
                formula, masked.index("~"), "the '~' between the response and the predictors cannot be inside parentheses"
            )
        raise caret(formula, len(formula), "a formula needs '~' between the response and the predictors")
    response = formula[:tilde].strip()
    if not response:
        raise caret(formula, tilde, "the formula has no response left of '~'")
    for bad in ("~", "|"):
        if bad in masked[:tilde]:
            raise caret(
                formula,
                masked.index(bad),
                f"the response cannot contain '{bad}'"
                + ("; a column whose name has a '|' is written in back-quotes: `y|z`" if bad == "|" else ""),
            )
    rhs = formula[tilde + 1 :]
    if _top_level_index(rhs, "~") >= 0:
        raise caret(formula, tilde + 1 + _top_level_index(rhs, "~"), "a formula has one '~'")
    if not rhs.strip():
        raise caret(formula, len(formula), "the formula has no right-hand side after '~'")

    fragments = [Fragment("response", response, len(formula[:tilde]) - len(formula[:tilde].lstrip()))]
    fixed_parts: list[str] = []
    bars: list[BarTerm] = []
    offsets: list[str] = []
    for sign, piece, pos in split_top(rhs, tilde + 1):
        bp = _bar_piece(piece)
        off = re.fullmatch(r"offset\s*\((.*)\)", _mask(piece), flags=re.S)
        if bp is None and off is not None and _top_level_index(piece[off.start(1) : off.end(1)], ",") < 0:
            inner = piece[off.start(1) : off.end(1)]
            if sign == "-":
                raise caret(formula, pos, f"an offset cannot be subtracted: -{piece}; write offset(-({inner.strip()}))")
            if not inner.strip():
                raise caret(formula, pos, "offset() needs an expression: offset(log(n))")
            if re.sub(r"\s+", "", inner) not in {re.sub(r"\s+", "", o) for o in offsets}:  # R's terms keep one copy
                offsets.append(inner.strip())
                fragments.append(Fragment("offset", inner, pos + off.start(1)))
            continue
        if bp is None:
            mpiece = _mask(piece)
            for bad, msg in (
                ("|", "a bar term must be a whole term in its own parentheses, like '(1 | g)', joined to the rest by '+'"),
                ("~", "a formula has one '~'"),
            ):
                if bad in mpiece:
                    raise caret(formula, pos + mpiece.index(bad), msg)
            fixed_parts.append(("- " if sign == "-" else "+ ") + piece)
            fragments.append(Fragment("fixed", piece, pos))
            continue
        struct, inner = bp
        if sign == "-":
            raise caret(formula, pos, f"a random-effects term cannot be subtracted: -{piece}")
        if struct and struct not in STRUCTURE_CLASSES:  # read here: the registry is the one list
            raise caret(
                formula,
                pos,
                f"unknown covariance structure {struct!r} around a bar term; use one of {', '.join(STRUCTURE_CLASSES)}",
            )
        double = _top_level_index(inner, "||")
        bar_at = double if double >= 0 else _top_level_index(inner, "|")
        lhs = inner[:bar_at].strip()
        grp = inner[bar_at + (2 if double >= 0 else 1) :]
        inner_pos = pos + piece.index("(") + 1
        if not lhs:
            raise caret(formula, inner_pos, "bar term without a left side: write (1 | g) for a random intercept")
        lhs_pos = inner_pos + len(inner[:bar_at]) - len(inner[:bar_at].lstrip())
        mlhs = _mask(lhs)
        for bad in ("~", "|"):
            if bad in mlhs:
                raise caret(
                    formula,
                    lhs_pos + mlhs.index(bad),
                    f"the left side of a bar term cannot contain '{bad}'"
                    + ("; a column whose name has a '|' is written in back-quotes: `y|z`" if bad == "|" else ""),
                )
        if _top_level_index(grp, "|") >= 0:
            raise caret(formula, inner_pos + bar_at, "a bar term has one '|' (or one '||')")
        groups = _grouping_factors(formula, grp, inner_pos + bar_at + (2 if double >= 0 else 1))
        lhss = _expand_double_vert(lhs, formula, lhs_pos) if double >= 0 else [lhs]
        fragments.append(Fragment("bar", lhs, lhs_pos))
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
    return ParsedFormula(
        formula=formula, response=response, fixed=fixed, bars=tuple(bars), fragments=tuple(fragments), offsets=tuple(offsets)
    )


def update_formula(old: str, new: str) -> str:
    """R's ``update.formula``: ``new`` with ``.`` standing for ``old``'s response (left of ``~``)
    and for its whole right-hand side (a term ``.`` on the right), e.g. ``". ~ . - Days"``;
    ``"~ . + (1 | item)"`` keeps the response.

    Raises
    ------
    FormulaError
        For a ``.`` inside an expression of ``new`` (``.^2``: write the terms out), or a formula
        without ``~``.
    """
    if not isinstance(new, str) or _top_level_index(new, "~") < 0:
        raise FormulaError(f"update(): the new formula must be a string with '~', like '. ~ . - x', got {new!r}")
    t_old, t_new = _top_level_index(old, "~"), _top_level_index(new, "~")
    old_lhs, old_rhs = old[:t_old].strip(), old[t_old + 1 :].strip()
    lhs, rhs = new[:t_new].strip(), new[t_new + 1 :].strip()
    if lhs in ("", "."):
        lhs = old_lhs
    else:  # log(.) ~ ...: the old response inside an expression
        lhs = re.sub(r"(?<![\w.`])\.(?![\w.`])", lambda _: old_lhs if BARE_NAME.fullmatch(old_lhs) else f"({old_lhs})", lhs)
    def key(piece: str) -> str:
        return re.sub(r"\s+", "", piece)

    terms: list[tuple[str, str]] = []  # (sign, piece): the new right-hand side, '.' expanded
    for sign, piece, _ in split_top(rhs, 0):
        if piece == ".":
            if sign == "-":
                raise FormulaError(f"update(): '- .' in {new!r} would remove every term")
            terms += [(sg, pc) for sg, pc, _ in split_top(old_rhs, 0) if (sg, key(pc)) not in {(a, key(b)) for a, b in terms}]
        elif re.search(r"(?<![\w.`])\.(?![\w.`])", _mask(piece)):
            raise FormulaError(f"update(): '.' inside the term {piece!r} of {new!r}; write the terms out")
        elif sign == "-" and any(sg == "+" and key(pc) == key(piece) for sg, pc in terms):
            terms = [(sg, pc) for sg, pc in terms if not (sg == "+" and key(pc) == key(piece))]  # R drops the term
        elif (sign, key(piece)) not in {(sg, key(pc)) for sg, pc in terms}:
            terms.append((sign, piece))
    if not terms:
        terms = [("+", "1")]
    pieces = [("- " if sg == "-" else "+ " if i else "") + pc for i, (sg, pc) in enumerate(terms)]
    return f"{lhs} ~ {' '.join(pieces)}"
