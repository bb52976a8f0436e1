"""R's spelling of a formula expression, as R's ``deparse`` writes a term's label.

R names a model column after its term as the parser read it, then deparsed: spaces
around ``+ - * == != < > <= >=`` and after commas, none around ``/ ^ :``, named arguments
as ``name = value``, numbers in R's shortest form (``1e3`` is ``1000``, ``1e5`` is ``1e+05``,
``.5`` is ``0.5``), logicals as ``TRUE``/``FALSE`` and strings in double quotes; so
``I(age-11)`` is named ``I(age - 11)`` and ``exp(x / 10)`` ``exp(x/10)``.

:func:`r_deparse` takes the expression in the Python dialect formulaic names its columns
with (``log(Days + 1, base=2)``, ``I(Days ** 2)``) and returns R's label.
"""

from __future__ import annotations

import ast
import re
from typing import Callable

__all__ = ["r_deparse", "r_label", "r_number", "is_logical", "hide_quoted", "show_quoted"]

#: a name R writes without back-quotes
_R_NAME = re.compile(r"(?:[^\W\d_]|\.(?![0-9]))[\w.]*")

# R's precedence, low to high (?Syntax): comparison, + -, * /, %any% and :, unary minus, ^
_PREC = {ast.Add: 3, ast.Sub: 3, ast.Mult: 4, ast.Div: 4, ast.Mod: 5, ast.MatMult: 5, ast.Pow: 7}
_SPELL = {ast.Add: " + ", ast.Sub: " - ", ast.Mult: " * ", ast.Div: "/", ast.Pow: "^", ast.MatMult: ":", ast.Mod: " %in% "}
_CMP = {ast.Eq: " == ", ast.NotEq: " != ", ast.Lt: " < ", ast.LtE: " <= ", ast.Gt: " > ", ast.GtE: " >= "}


def r_number(x: float) -> str:
    """A number as R's ``deparse`` writes it: 15 significant digits, the shorter of fixed and
    scientific notation (fixed on a tie), a two-digit exponent (``1e+05``, ``2.5e-07``)."""
    if x != x or x in (float("inf"), float("-inf")):
        return {"nan": "NaN", "inf": "Inf", "-inf": "-Inf"}[repr(float(x))]
    fixed = f"{x:.15g}"
    if "e" in fixed:  # Python chose scientific: write it out in fixed notation
        fixed = f"{x:.{max(0, 15 - 1 - int(f'{x:e}'.split('e')[1]))}f}"
    if "." in fixed:
        fixed = fixed.rstrip("0").rstrip(".")
    mant, exp = f"{x:.14e}".split("e")
    mant = mant.rstrip("0").rstrip(".")
    e = int(exp)
    sci = f"{mant}e{'-' if e < 0 else '+'}{abs(e):02d}"
    return fixed if len(fixed) <= len(sci) else sci


def _prec(node: ast.AST) -> int:
    if isinstance(node, ast.Compare):
        return 1
    if isinstance(node, ast.BinOp):
        return _PREC.get(type(node.op), 3)
    if isinstance(node, ast.UnaryOp):
        return 6
    return 9


def _dp(node: ast.AST) -> str:
    if isinstance(node, ast.Constant):
        v = node.value
        if isinstance(v, bool):
            return "TRUE" if v else "FALSE"
        if isinstance(v, (int, float)):
            return r_number(float(v))
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return repr(v)
    if isinstance(node, ast.Name):
        return {"True": "TRUE", "False": "FALSE"}.get(node.id, node.id)
    if isinstance(node, ast.Attribute):
        return f"{_dp(node.value)}.{node.attr}"
    if isinstance(node, ast.Call):
        args = [_dp(a) for a in node.args] + [f"{k.arg} = {_dp(k.value)}" for k in node.keywords]
        return f"{_dp(node.func)}({', '.join(args)})"
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _dp(node.operand)
        if _prec(node.operand) < 6:
            inner = f"({inner})"
        return ("-" if isinstance(node.op, ast.USub) else "+") + inner
    if isinstance(node, ast.BinOp):
        p = _prec(node)
        right_assoc = isinstance(node.op, ast.Pow)
        left, right = _dp(node.left), _dp(node.right)
        if _prec(node.left) < p or (right_assoc and _prec(node.left) == p):
            left = f"({left})"
        if _prec(node.right) < p or (not right_assoc and _prec(node.right) == p):
            right = f"({right})"
        return left + _SPELL[type(node.op)] + right
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        left, right = _dp(node.left), _dp(node.comparators[0])
        if _prec(node.left) <= 1:
            left = f"({left})"
        if _prec(node.comparators[0]) <= 1:
            right = f"({right})"
        return left + _CMP[type(node.ops[0])] + right
    raise ValueError("not an R expression")


def r_deparse(expr: str) -> str:
    """R's label of an expression written in formulaic's (Python) dialect, or ``expr`` itself
    when it does not read as one (a back-quoted name, R's own spelling of a name).

    Parameters
    ----------
    expr : str

    Returns
    -------
    str
    """
    text, names = hide_quoted(expr.strip())
    try:
        out = _dp(ast.parse(text, mode="eval").body)
    except (SyntaxError, ValueError, KeyError, RecursionError):
        return expr
    # R writes a name back-quoted only where it is not a plain name
    return show_quoted(out, names, lambda n: n if _R_NAME.fullmatch(n) else f"`{n}`")


def hide_quoted(expr: str) -> tuple[str, list[str]]:
    """``expr`` with each back-quoted name (`` `x-y` ``) as an identifier ``_bq<k>_`` that Python's
    parser reads, and the names (without their quotes), for :func:`show_quoted`."""
    names: list[str] = []

    def hide(m: re.Match) -> str:
        names.append(m.group(1))
        return f"_bq{len(names) - 1}_"

    return re.sub(r"`([^`]*)`", hide, expr), names


def show_quoted(text: str, names: list[str], spell: Callable[[str], str]) -> str:
    """``text`` with the identifiers of :func:`hide_quoted` written back, each name as ``spell`` writes it."""
    return re.sub(r"_bq(\d+)_", lambda m: spell(names[int(m.group(1))]), text)


#: R's spelling of a binary operator in a deparsed call (``%%`` and ``/`` unspaced, as R 4 writes them)
_BINARY = {"+": " + ", "-": " - ", "*": " * ", "/": "/", "^": "^", "**": "^", ":": ":", "%in%": " %in% ", "%%": "%%",
           "==": " == ", "!=": " != ", "<": " < ", "<=": " <= ", ">": " > ", ">=": " >= "}


def r_label(tokens: list[tuple[str, str]]) -> str:
    """R's label of an expression as R read it: its tokens (kind, text) deparsed, the user's
    parentheses kept (R's parser keeps them: ``I(x - (-1))``, ``log((x + 1))``) and none added.

    Parameters
    ----------
    tokens : list of (str, str)
        R's tokens: kind ``"name"`` (a word; back-quoted where written so), ``"column"`` (a
        column of the data, written as R writes its name), ``"number"``, ``"string"``,
        ``"op"``, ``"("``, ``")"``, ``","`` or ``"="``, and the text as written.

    Returns
    -------
    str
    """
    out: list[str] = []
    prev = None
    for kind, text in tokens:
        if kind in ("name", "column"):  # a word (the constant True is R's TRUE) or a column of the data
            bare = text[1:-1] if text.startswith("`") else text
            if kind == "name":
                bare = {"True": "TRUE", "False": "FALSE"}.get(bare, bare)
            out.append(bare if _R_NAME.fullmatch(bare) else f"`{bare}`")
        elif kind == "number":
            out.append(r_number(float(text)))
        elif kind == "string":
            body = ast.literal_eval(text)
            out.append('"' + body.replace("\\", "\\\\").replace('"', '\\"') + '"')
        elif kind == "op":
            unary = text in ("+", "-") and (prev is None or prev in ("op", "(", ",", "="))
            out.append(text if unary else _BINARY.get(text, f" {text} "))
        elif kind == ",":
            out.append(", ")
        elif kind == "=":
            out.append(" = ")
        else:
            out.append(text)
        prev = kind
    return "".join(out)


def is_logical(expr: str) -> bool:
    """Whether an expression is a comparison (bare, or inside ``I()``): R codes its logical
    values as a factor, named ``expr`` + ``TRUE``."""
    try:
        node = ast.parse(hide_quoted(expr.strip())[0], mode="eval").body
    except SyntaxError:
        return False
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "I" and len(node.args) == 1:
        node = node.args[0]
    return isinstance(node, ast.Compare)
