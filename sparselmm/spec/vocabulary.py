"""The closed vocabulary of formula expressions.

A formula string is the user's text (a script, a config file, a web form, the
command line), and formulaic evaluates the pieces of it that are function calls
as Python (``eval``). So nothing from a formula reaches formulaic before this
module has read it and found in it only:

* the data's columns (plain R names like ``ground.beef``, or back-quoted names
  like `` `x-y` ``; a name that is a column *is* that column, as R looks in the
  data first: a column ``e``, ``np``, ``True`` or ``log`` is used as such);
* the words of :data:`VOCABULARY` (functions such as ``log()``, ``poly()``,
  ``C()`` and its contrasts, constants ``True``/``False``);
* numbers (``2``, ``1e3``, ``1.5E-3``, ``.5``, ``2.``), strings as arguments
  of a function (``C(f, Treatment('b'))``) and named arguments (``bs(x, df = 4)``);
* R's formula operators ``+ - * / : ^ %in%`` and parentheses, and inside a
  function call arithmetic ``+ - * / ^`` and comparisons ``== != < <= > >=``.

Everything else (attribute access ``np.log(x)``, subscripts, lambdas,
comprehensions, ``:=``, starred arguments, f-strings, a function or name that
is neither a column nor a word of the vocabulary) is a
:class:`~sparselmm.errors.FormulaError` that names the construct, with a caret.

The reading is an AST walk: the fragment is tokenised with R's rules (so
``1e3`` is a number and `` `y|z` `` a name), written as a Python expression with
every name replaced by a placeholder, parsed by :func:`ast.parse` and checked
node by node against a whitelist.

The evaluation is closed in the same way: :func:`namespace` is the context
formulaic gets (the vocabulary only, never the caller's frame), and every name
that survives the check is a column (found in the data, formulaic's first
layer) or a word of the vocabulary (its second layer), so Python's builtins,
which ``eval`` would find last, are never reached. :class:`ClosedSpec` keeps
the same rule for new data (prediction).
"""

from __future__ import annotations

import ast
import difflib
import functools
import keyword
import re
import unicodedata
import warnings
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Collection, Mapping, NamedTuple

import numpy

from sparselmm.errors import DataError, FormulaError
from sparselmm.spec.formula import BARE_NAME as _NAME  # R's names (letters, digits, '.', '_'); '_' first for messages
from sparselmm.spec.deparse import hide_quoted, r_label, show_quoted
from sparselmm.spec.formula import caret

if TYPE_CHECKING:  # pragma: no cover
    from sparselmm.spec.formula import ParsedFormula

__all__ = [
    "Word",
    "VOCABULARY",
    "CONSTANTS",
    "NAME_TOKEN",
    "check",
    "variables",
    "needed_variables",
    "translate",
    "Translation",
    "to_formulaic",
    "namespace",
    "ClosedSpec",
    "formulaic_frame",
    "formulaic_name",
    "call_arguments",
    "call_texts",
    "word_of",
]


# ----------------------------------------------------------------------------------------
# the table


@dataclass(frozen=True)
class Word:
    """One word of the formula vocabulary.

    Attributes
    ----------
    kind : {"function", "constant"}
        A function is called (``log(x)``); as a bare name it may only be an
        argument of a call (``C(f, Sum)``). A constant is a value, used as an
        argument of a call (``scale(x, center = False)``).
    source : str
        Where the value comes from: ``"formulaic:NAME"`` (formulaic's transform
        ``formulaic.transforms.TRANSFORMS[NAME]``; a dotted ``NAME`` follows
        attributes, ``contr.sum``), ``"numpy:NAME"``, ``"sparselmm:NAME"`` (a
        function of this module) or ``"python:LITERAL"`` (written into the
        expression as the literal itself).
    note : str
        What it computes, for the documentation and the messages.
    """

    kind: str
    source: str
    note: str = ""


#: Every name a formula may use besides the data's columns: name -> :class:`Word`.
#: Extend it here; a name that is
#: not a Python identifier (``contr.sum``, ``as.factor``) is handed to formulaic under an
#: alias, and a column with the same name as a word keeps its meaning (the data first).
VOCABULARY: Mapping[str, Word] = MappingProxyType(
    {
        # pointwise transforms
        "log": Word("function", "sparselmm:log", "natural logarithm; log(x, base = 2) in another base"),
        "log1p": Word("function", "numpy:log1p", "log(1 + x), accurate for small x"),
        "expm1": Word("function", "numpy:expm1", "exp(x) - 1, accurate for small x"),
        "sqrt": Word("function", "numpy:sqrt", "square root"),
        "sin": Word("function", "numpy:sin", "sine (radians)"),
        "cos": Word("function", "numpy:cos", "cosine (radians)"),
        "tan": Word("function", "numpy:tan", "tangent (radians)"),
        "sign": Word("function", "numpy:sign", "sign: -1, 0 or 1"),
        "floor": Word("function", "numpy:floor", "largest integer not above x"),
        "ceiling": Word("function", "numpy:ceil", "smallest integer not below x"),
        "round": Word("function", "sparselmm:round", "round(x, digits = 0), halves to even as R"),
        "pmin": Word("function", "sparselmm:pmin", "elementwise minimum of its arguments"),
        "pmax": Word("function", "sparselmm:pmax", "elementwise maximum of its arguments"),
        "as.numeric": Word("function", "sparselmm:as.numeric", "a number: a factor's level codes from 1"),
        "log10": Word("function", "formulaic:log10", "base-10 logarithm"),
        "log2": Word("function", "formulaic:log2", "base-2 logarithm"),
        "exp": Word("function", "formulaic:exp", "exponential"),
        "exp2": Word("function", "formulaic:exp2", "2 to the power x"),
        "exp10": Word("function", "sparselmm:exp10", "10 to the power x"),
        "abs": Word("function", "numpy:absolute", "absolute value"),
        "I": Word("function", "formulaic:I", "the expression as it is (arithmetic inside a formula)"),
        # transforms whose result depends on the whole column (formulaic's stateful transforms)
        "scale": Word("function", "sparselmm:scale", "centre and scale to standard deviation 1 (R's scale: missing values left out)"),
        "center": Word("function", "sparselmm:center", "subtract the mean (missing values left out of it)"),
        "standardize": Word("function", "formulaic:standardize", "centre and scale to SD 1 with ddof 0 (patsy's)"),
        "poly": Word("function", "sparselmm:poly", "orthogonal polynomials of degrees 1..degree; raw = TRUE for powers"),
        "bs": Word("function", "sparselmm:bs", "B-spline basis (R's splines::bs: df, knots, degree, intercept, Boundary.knots)"),
        "ns": Word("function", "sparselmm:ns", "natural cubic spline basis (R's splines::ns: df, knots, intercept, Boundary.knots)"),
        "cr": Word("function", "formulaic:cr", "natural cubic regression spline (needs df or knots)"),
        "cs": Word("function", "formulaic:cs", "natural cubic regression spline (needs df or knots)"),
        "cc": Word("function", "formulaic:cc", "cyclic cubic regression spline (needs df or knots)"),
        # factors and their contrasts
        "C": Word("function", "sparselmm:C", "a factor with contrasts, as R's C(f, contr.sum), C(f, contr.treatment, base = 2)"),
        "factor": Word("function", "sparselmm:factor", "a factor of its argument's values (R's factor())"),
        "as.factor": Word("function", "sparselmm:factor", "a factor of its argument's values (R's as.factor())"),
        "ordered": Word("function", "sparselmm:ordered", "an ordered factor (R's ordered(x, levels)), coded by contr.poly"),
        "c": Word("function", "sparselmm:c", "a vector of constants: knots = c(3, 6), levels = c(\"b\", \"a\")"),
        "relevel": Word("function", "sparselmm:relevel", "relevel(f, ref = \"b\"): the factor with reference level b"),
        "Treatment": Word("function", "formulaic:Treatment", "treatment contrasts, Treatment('b') for reference level b"),
        "Sum": Word("function", "formulaic:Sum", "sum-to-zero contrasts"),
        "Helmert": Word("function", "formulaic:Helmert", "Helmert contrasts"),
        "Poly": Word("function", "formulaic:Poly", "orthogonal polynomial contrasts"),
        "Diff": Word("function", "formulaic:Diff", "successive-difference contrasts"),
        "contr.treatment": Word("function", "sparselmm:contr.treatment", "treatment contrasts; contr.treatment(n, base = 2)"),
        "contr.sum": Word("function", "sparselmm:contr.sum", "sum-to-zero contrasts, columns 1, 2, ..."),
        "contr.helmert": Word("function", "sparselmm:contr.helmert", "Helmert contrasts, columns 1, 2, ..."),
        "contr.poly": Word("function", "sparselmm:contr.poly", "orthogonal polynomial contrasts, columns .L .Q .C ^4 ..."),
        "contr.SAS": Word("function", "sparselmm:contr.SAS", "treatment contrasts with the last level as reference"),
        "contr.diff": Word("function", "formulaic:contr.diff", "successive-difference contrasts"),
        # constants
        "True": Word("constant", "python:True", "logical true, for arguments such as raw = True"),
        "False": Word("constant", "python:False", "logical false, for arguments such as center = False"),
        "TRUE": Word("constant", "python:True", "R's logical true (raw = TRUE)"),
        "FALSE": Word("constant", "python:False", "R's logical false (scale = FALSE)"),
        "T": Word("constant", "sparselmm:T", "R's short TRUE"),
        "F": Word("constant", "sparselmm:F", "R's short FALSE"),
        "pi": Word("constant", "numpy:pi", "3.14159..."),
    }
)


#: the constants of the vocabulary (a column of the same name is that column)
CONSTANTS: frozenset[str] = frozenset(n for n, w in VOCABULARY.items() if w.kind == "constant")

#: a name token of a formula: back-quoted, or R's name characters
NAME_TOKEN = re.compile(r"`[^`]*`|" + _NAME.pattern)


def python_name(name: str) -> str:
    """The identifier under which the word ``name`` is given to formulaic (``contr.sum`` ->
    ``_contr_sum_``; a Python identifier stays itself)."""
    if name.isidentifier() and not keyword.iskeyword(name):
        return name
    return "_" + re.sub(r"\W", "_", name) + "_"


def _pointwise(f: numpy.ufunc, name: str) -> Callable[[Any], Any]:
    """numpy's ``f`` of one argument (a ufunc's second one is its output array), named as R's word."""

    def word(x: Any) -> Any:
        return f(x)

    word.__name__ = word.__qualname__ = name
    return word


def _resolve(word: Word, name: str = "") -> Any:
    where, _, what = word.source.partition(":")
    if where == "formulaic":
        from formulaic.transforms import TRANSFORMS  # local: formulaic is slow to import

        head, *attrs = what.split(".")
        value = TRANSFORMS[head]
        for a in attrs:
            value = getattr(value, a)
        return _pointwise(value, name) if isinstance(value, numpy.ufunc) and name else value
    if where == "numpy":
        value = getattr(numpy, what)
        return _pointwise(value, name) if isinstance(value, numpy.ufunc) and name else value
    if where == "sparselmm":
        from sparselmm.spec import rfunctions  # local: it imports formulaic, which is slow to import

        return rfunctions.STATEFUL[what] if what in rfunctions.STATEFUL else rfunctions.FUNCTIONS[what]
    if where == "python":
        return ast.literal_eval(what)
    raise ValueError(f"unknown source {word.source!r}")  # pragma: no cover - a mistake in the table


@functools.lru_cache(maxsize=1)
def namespace() -> Mapping[str, Any]:
    """The evaluation context to give formulaic: the vocabulary, nothing else.

    Passed as ``context=`` to :func:`formulaic.model_matrix` (whose default, the
    caller's frame, would expose its globals and their builtins). formulaic
    looks a name up in the data, then in this mapping, then in its own
    transforms; a Python ``eval`` would then try the builtins, but no name that
    :func:`check` lets through gets that far: it is a column or a key of this
    mapping (constants such as ``True`` are literals).

    Returns
    -------
    Mapping
        Read-only: python name (:func:`python_name`) -> value.
    """
    return MappingProxyType(
        {python_name(n): _resolve(w, n) for n, w in VOCABULARY.items() if not w.source.startswith("python:")}
    )


@functools.lru_cache(maxsize=1)
def _words_by_function() -> Mapping[str, str]:
    out: dict[str, str] = {}
    for name, w in VOCABULARY.items():
        if w.kind == "function" and not w.source.startswith("python:"):
            f = _resolve(w, name)
            for attr in ("__qualname__", "__name__"):
                out.setdefault(str(getattr(f, attr, name)), name)
    return MappingProxyType(out)


def word_of(function_name: str) -> str | None:
    """The word of the vocabulary whose Python function is called ``function_name`` (``r_round``
    -> ``round``, ``identity`` -> ``I``), for messages that Python wrote; None if there is none."""
    if function_name in VOCABULARY:
        return function_name
    return _words_by_function().get(function_name)


@functools.lru_cache(maxsize=1)
def _python_names() -> frozenset[str]:
    return frozenset(python_name(n) for n, w in VOCABULARY.items() if not w.source.startswith("python:"))


def _functions() -> list[str]:
    return sorted((n for n, w in VOCABULARY.items() if w.kind == "function"), key=str.lower)


def suggest(name: str, columns: list[str]) -> str:
    """``"; did you mean 'x'?"`` for the columns nearest to ``name`` (or the same name in
    another case), else ``""``.

    Parameters
    ----------
    name : str
        A name that is not among ``columns``.
    columns : list of str
        The names there are.

    Returns
    -------
    str
        The hint to append to a message ("" when no name is near).
    """
    close = difflib.get_close_matches(name, columns, n=3, cutoff=0.6)
    if not close:
        lower = {c.lower(): c for c in columns}
        if name.lower() in lower:
            close = [lower[name.lower()]]
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""




# ----------------------------------------------------------------------------------------
# reading a fragment: tokens (R's rules), then a Python AST of placeholders


class _Tok(NamedTuple):
    kind: str  # "name", "number", "string", "op", "(", ")", ",", "="
    text: str  # as written
    start: int
    end: int
    in_call: bool  # inside the parentheses of a function call

    @property
    def value(self) -> str:
        """A name without its back-quotes; a number without leading zeros; else the text."""
        if self.kind == "name" and self.text.startswith("`"):
            return self.text[1:-1]
        if self.kind == "number":
            return re.sub(r"^0+(?=\d)", "", self.text)
        return self.text

    @property
    def quoted(self) -> bool:
        return self.kind == "name" and self.text.startswith("`")


_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_NUMBER_TAIL = re.compile(r"[\w.]*")  # what may not follow a number (1e3e, 0x10, 1L, 1j)
_R_NAME = re.compile(r"(?:[^\W\d_]|\.(?![0-9]))[\w.]*")  # a name R writes without back-quotes
_STRING = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", re.S)
_COMPARISONS = ("==", "!=", "<=", ">=", "<", ">")
_OPERATORS = ("%in%", "**", *_COMPARISONS, "+", "-", "*", "/", "^", ":")
_LOGICAL = "is not in the formula vocabulary; compute the condition as a column of the data first"
#: constructs that are refused at sight, longest first: text -> message
_REFUSED = (
    ("<-", "assignment '<-' is not allowed in a formula (for a comparison with a negative number write 'x < -2')"),
    ("->", "assignment '->' is not allowed in a formula"),
    (":=", "assignment ':=' is not allowed in a formula"),
    ("//", "'//' is not an operator of formulas; write I(x / 2) for a division"),
    ("&&", f"the logical operator '&&' {_LOGICAL}"),
    ("||", f"the logical operator '||' {_LOGICAL}"),
    ("&", f"the logical operator '&' {_LOGICAL}"),
    ("|", f"the logical operator '|' {_LOGICAL}"),
    ("!", f"the logical operator '!' {_LOGICAL}"),
    ("[", "subscripts ('[') are not allowed in a formula; name the column itself"),
    ("]", "subscripts (']') are not allowed in a formula"),
    ("{", "braces ('{', formulaic's Python code) are not allowed in a formula"),
    ("}", "braces ('}') are not allowed in a formula"),
    ("$", "'$' (element access) is not allowed in a formula; name the column itself"),
    ("@", "'@' (attribute access) is not allowed in a formula"),
    ("~", "'~' cannot appear here: a formula has one '~', between the response and the predictors"),
    (";", "';' is not allowed in a formula"),
    ("#", "comments ('#') are not allowed in a formula"),
)


def _lex(text: str, shown: str, at: int) -> list[_Tok]:
    """R's tokens of ``text``; ``shown``/``at``: the formula and the fragment's place in it, for carets."""
    toks: list[_Tok] = []
    stack: list[bool] = []  # True for a call's parentheses
    i, n = 0, len(text)

    def fail(pos: int, msg: str) -> FormulaError:
        return caret(shown, at + pos, msg)

    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        in_call = any(stack)
        prev = toks[-1] if toks else None
        if ch == "`":
            j = text.find("`", i + 1)
            if j < 0:
                raise fail(i, "unclosed back-quoted name: ` is never closed")
            if j == i + 1:
                raise fail(i, "empty back-quoted name ``")
            toks.append(_Tok("name", text[i : j + 1], i, j + 1, in_call))
            i = j + 1
            continue
        m = _NUMBER.match(text, i) if (ch.isdigit() or (ch == "." and text[i + 1 : i + 2].isdigit())) else None
        if m:
            tail = _NUMBER_TAIL.match(text, m.end()).end()
            if tail > m.end():
                raise fail(i, f"cannot read the number {text[i:tail]!r}; write numbers like 2, 0.5, .5, 1e3 or 1.5E-3")
            toks.append(_Tok("number", m.group(0), i, m.end(), in_call))
            i = m.end()
            continue
        m = _NAME.match(text, i)
        if m:
            if ch == "." and prev is not None and prev.kind in ("name", "number", "string", ")"):
                raise fail(i, f"attribute access ({m.group(0)!r}) is not allowed in a formula")
            if text[m.end() : m.end() + 1] in ("'", '"'):
                raise fail(i, f"string prefixes ({m.group(0)}'...', f-strings and the like) are not allowed in a formula")
            toks.append(_Tok("name", m.group(0), i, m.end(), in_call))
            i = m.end()
            continue
        if ch in "'\"":
            m = _STRING.match(text, i)
            if not m:
                raise fail(i, f"unclosed string: {ch} is never closed")
            if not in_call:
                raise fail(i, "a string can only be an argument of a function, like C(f, Treatment('b'))")
            toks.append(_Tok("string", m.group(0), i, m.end(), in_call))
            i = m.end()
            continue
        if ch == "%":
            j = text.find("%", i + 1)
            op = text[i : j + 1] if j > 0 and not re.search(r"\s", text[i : j + 1]) else "%"
            if op != "%in%":
                raise fail(i, f"the operator {op!r} is not in the formula vocabulary (formulas have + - * / ^ : %in%)")
        for bad, msg in _REFUSED:
            if text.startswith(bad, i) and not text.startswith("!=", i):
                raise fail(i, msg)
        if ch == "(":
            stack.append(prev is not None and prev.kind in ("name", ")", "number", "string"))
            toks.append(_Tok("(", ch, i, i + 1, in_call))
            i += 1
            continue
        if ch == ")":
            if not stack:
                raise fail(i, "unbalanced parentheses: ')' without a matching '('")
            if prev is not None and prev.kind == ",":
                raise fail(prev.start, "an empty argument after ','")
            stack.pop()
            toks.append(_Tok(")", ch, i, i + 1, any(stack)))
            i += 1
            continue
        if ch == ",":
            toks.append(_Tok(",", ch, i, i + 1, in_call))
            i += 1
            continue
        op = next((o for o in _OPERATORS if text.startswith(o, i)), None)
        if op is None and ch == "=":
            if not (stack and stack[-1]):
                raise fail(i, "'=' names an argument of a function, like poly(x, degree = 2); it cannot stand here")
            toks.append(_Tok("=", ch, i, i + 1, in_call))
            i += 1
            continue
        if op is None:
            raise fail(i, f"unexpected character {ch!r} in a formula")
        if op in (":", "%in%") and in_call:
            lam = next((t for t in toks if t.text == "lambda"), None)  # lambda x: ... reads as an interaction
            if lam is not None:
                raise fail(lam.start, "Python's 'lambda' is not part of the formula vocabulary")
            raise fail(i, f"{op!r} is a formula operator (interaction, nesting); it cannot be used inside a function call")
        if op in _COMPARISONS and not in_call:
            raise fail(i, f"a comparison {op!r} must be inside I(), like I(x {op} 2)")
        toks.append(_Tok("op", op, i, i + len(op), in_call))
        i += len(op)
    if stack:
        raise fail(n, "unbalanced parentheses: '(' is never closed")
    return toks


_PY_OPS = {"^": "**", ":": "@", "%in%": "%"}
_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.MatMult, ast.Mod)
_CMPOPS = (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE)
_CONSTRUCTS = {  # AST nodes the whitelist refuses -> what the message calls them
    "Attribute": "attribute access",
    "Subscript": "subscripts",
    "Slice": "slices",
    "Lambda": "lambda functions",
    "ListComp": "comprehensions",
    "SetComp": "comprehensions",
    "DictComp": "comprehensions",
    "GeneratorExp": "comprehensions",
    "NamedExpr": "assignment expressions (':=')",
    "Starred": "starred arguments ('*x')",
    "JoinedStr": "f-strings",
    "FormattedValue": "f-strings",
    "IfExp": "conditional expressions",
    "BoolOp": "'and'/'or'",
    "Tuple": "tuples ('(a, b)')",
    "List": "lists",
    "Dict": "dictionaries",
    "Set": "sets",
    "Await": "'await'",
    "Yield": "'yield'",
    "YieldFrom": "'yield'",
}
_MODULES = frozenset({"np", "numpy", "pd", "pandas", "math", "os", "sys", "scipy", "builtins", "formulaic", "subprocess"})


@dataclass(frozen=True)
class _Reading:
    """What a fragment is made of, independent of the data: its tokens and the role of each name."""

    tokens: tuple[_Tok, ...]
    calls: tuple[int, ...]  # tokens that name a called function (checked: words of the vocabulary)
    values: tuple[int, ...]  # tokens that name a value (a column or a word), in order
    keywords: tuple[int, ...]  # tokens that name an argument (``df`` in ``bs(x, df = 4)``)


def _describe(t: _Tok) -> str:
    kind = {"name": "name ", "number": "number ", "string": "string "}.get(t.kind, "")
    return f"{kind}{t.text!r}"


def _call_name_error(t: _Tok) -> str:
    name = t.value
    head, _, tail = name.partition(".")
    if tail and (tail in VOCABULARY or head in _MODULES or "__" in name):
        hint = f"; write {tail}(...)" if tail in VOCABULARY else ""
        return f"attribute access ({name!r}) is not allowed in a formula{hint}"
    close = difflib.get_close_matches(name, list(VOCABULARY), n=2, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return f"function {name!r} is not in the formula vocabulary{hint} (its functions are {', '.join(_functions())})"


@functools.lru_cache(maxsize=1024)
def _read(text: str, shown: str, at: int) -> _Reading:
    """Tokenise ``text``, parse it as a Python expression of placeholders and check every node.

    Raises FormulaError (caret in ``shown`` at ``at`` + the position) for what no data could make valid.
    """
    toks = _lex(text, shown, at)
    if not toks:
        raise caret(shown, at, "empty expression in a formula")
    # the Python expression: names as placeholders _N<k> (k: the token), strings as '' (so the
    # code is ASCII and an AST offset is a character offset), R's operators as Python's
    src: list[str] = []
    where: list[tuple[int, int]] = []  # python offset -> token index
    offset = 0
    for k, t in enumerate(toks):
        if t.kind == "name":
            py = f"_N{k}"
        elif t.kind == "number":
            py = t.value
        elif t.kind == "string":
            py = "''"
        else:
            py = _PY_OPS.get(t.text, t.text)
        where.append((offset, k))
        src.append(py)
        offset += len(py) + 1
    code = " ".join(src)

    def token_at(offset: int) -> int | None:
        best = None
        for off, k in where:
            if off <= offset:
                best = k
        return best

    def fail(k: int | None, msg: str) -> FormulaError:
        return caret(shown, at + (toks[k].start if k is not None else len(text)), msg)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "'int' object is not callable" for 2(x)
            tree = ast.parse(code, mode="eval")
    except SyntaxError as exc:
        k = token_at((exc.offset or 0) - 1) if exc.offset and exc.offset <= len(code) else None
        kw = next(  # a Python keyword (lambda, if, for, not, ...) is the likely cause
            (j for j, t in enumerate(toks) if t.kind == "name" and not t.quoted and keyword.iskeyword(t.text)
             and t.text not in VOCABULARY),
            None,
        )
        if kw is not None:
            raise fail(kw, f"Python's {toks[kw].text!r} is not part of the formula vocabulary") from None
        if "positional argument follows keyword argument" in (exc.msg or ""):
            raise fail(k, "an unnamed argument cannot follow a named one") from None
        if k is None:
            raise fail(None, f"the expression {text.strip()!r} ends too early") from None
        raise fail(k, f"unexpected {_describe(toks[k])} in a formula") from None
    except (RecursionError, MemoryError):
        raise fail(None, "the expression is too deeply nested to read") from None
    except ValueError as exc:  # pragma: no cover - what the lexer lets through parses or is a SyntaxError
        raise fail(None, f"the expression cannot be read: {exc}") from None

    calls: list[int] = []
    values: list[int] = []
    kwargs: list[int] = []

    def tok_of(node: ast.AST) -> int | None:
        return token_at(getattr(node, "col_offset", 0))

    def name_tok(node: ast.Name) -> int:
        return int(node.id[2:])

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Expression):
            visit(node.body)
        elif isinstance(node, ast.BinOp) and isinstance(node.op, _BINOPS):
            visit(node.left)
            visit(node.right)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            visit(node.operand)
        elif isinstance(node, ast.Compare):
            if len(node.ops) > 1:
                raise fail(tok_of(node.comparators[0]), "chained comparisons (a < b < c) are not allowed in a formula")
            if not isinstance(node.ops[0], _CMPOPS):  # pragma: no cover - 'in'/'is' cannot be lexed
                raise fail(tok_of(node), "this comparison is not allowed in a formula")
            visit(node.left)
            visit(node.comparators[0])
        elif isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):
                raise fail(tok_of(node.func), "only the functions of the formula vocabulary can be called, by their name")
            k = name_tok(node.func)
            if toks[k].value not in VOCABULARY or VOCABULARY[toks[k].value].kind != "function":
                raise fail(k, _call_name_error(toks[k]))
            if toks[k].value == "c" and not toks[k].in_call:
                raise fail(k, "c() makes a vector of constants for an argument (knots = c(3, 6)); it cannot be a term")
            calls.append(k)
            for a in node.args:
                if isinstance(a, ast.Starred):
                    raise fail(tok_of(a), "starred arguments ('*x') are not allowed in a formula")
                visit(a)
            for kw in node.keywords:
                if kw.arg is None:
                    raise fail(tok_of(kw.value), "'**' unpacking of arguments is not allowed in a formula")
                j = int(kw.arg[2:])
                t = toks[j]
                if t.quoted or not t.text.replace(".", "_").isidentifier() or keyword.iskeyword(t.text):
                    raise fail(j, f"{t.text!r} cannot name an argument; write a plain name, like degree = 2")
                if t.text.startswith("_"):
                    raise fail(
                        j, f"the argument {t.text!r} is not allowed in a formula (names starting with '_' are internal)"
                    )
                kwargs.append(j)
                visit(kw.value)
        elif isinstance(node, ast.Name):
            values.append(name_tok(node))
        elif isinstance(node, ast.Constant) and type(node.value) in (int, float, str):
            pass
        else:
            what = _CONSTRUCTS.get(type(node).__name__, f"this construct ({type(node).__name__})")
            raise fail(tok_of(node), f"{what} cannot be used in a formula")

    try:
        visit(tree)
    except RecursionError:
        raise fail(None, "the expression is too deeply nested to read") from None
    return _Reading(tuple(toks), tuple(calls), tuple(values), tuple(kwargs))


def _value_error(t: _Tok, columns: Collection[str], shown: str) -> str:
    """The message for a name that is not a column of the data."""
    name = t.value
    cols = list(columns)
    w = VOCABULARY.get(name)
    if not t.quoted and w is not None:
        if w.kind == "function":
            return f"{name!r} is a function of the formula vocabulary, not a column of the data; call it, like {name}(x)"
        return (
            f"column {name!r} in formula {shown!r} is not in the data"
            f" (the constant {name} can only be an argument of a function)"
        )
    if not t.quoted and keyword.iskeyword(name):
        return f"Python's {name!r} is not part of the formula vocabulary (and {name!r} is not a column of the data)"
    head, _, tail = name.partition(".")
    if not t.quoted and tail and (head in columns or head in _MODULES or head in VOCABULARY or "__" in name):
        return f"{name!r} is not a column of the data, and attribute access is not allowed in a formula"
    if name.startswith("__"):
        return f"{name!r} is neither a column of the data nor a word of the formula vocabulary"
    hint = suggest(name, cols)
    if not hint:
        close = difflib.get_close_matches(name, list(VOCABULARY), n=2, cutoff=0.6)
        hint = f"; did you mean {', '.join(repr(c) for c in close)} (of the formula vocabulary)?" if close else ""
    return f"column {name!r} in formula {shown!r} is not in the data{hint}"


def _resolve_names(reading: _Reading, columns: Collection[str], shown: str, at: int) -> tuple[list[str], dict[int, str]]:
    """The columns used (first appearance) and the role of each value token ("column",
    "word"), or a FormulaError for a name that is neither."""
    used: list[str] = []
    roles: dict[int, str] = {}
    for k in reading.values:
        t = reading.tokens[k]
        name = t.value
        if name in columns:
            roles[k] = "column"
            if name not in used:
                used.append(name)
            continue
        w = None if t.quoted else VOCABULARY.get(name)
        if w is not None and t.in_call:  # a constant, or a function passed as an argument (C(f, Sum))
            roles[k] = "word"
            continue
        raise caret(shown, at + t.start, _value_error(t, columns, shown))
    return used, roles


def name_tokens(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, name)`` of every name token of ``text`` used as a variable: outside any
    function call, not a call's function, not an argument's name (R's tokens: back-quoted names
    without their quotes)."""
    toks = _lex(text, text, 0)
    out = []
    for i, t in enumerate(toks):
        nxt = toks[i + 1] if i + 1 < len(toks) else None
        if t.kind == "name" and not t.in_call and not (nxt is not None and nxt.kind == "("):
            out.append((t.start, t.end, t.value))
    return out


def substitute_names(text: str, new: Callable[[str], str | None]) -> str:
    """``text`` with each name token used as a variable (see :func:`name_tokens`) replaced by
    ``new(name)``, where that is not None."""
    out, last = [], 0
    for start, end, value in name_tokens(text):
        replacement = new(value)
        if replacement is not None:
            out += [text[last:start], replacement]
            last = end
    return "".join(out) + text[last:]


def call_texts(text: str, function: str) -> list[str]:
    """The text of every call of ``function`` in ``text`` (R's tokens: parentheses inside strings
    and back-quoted names do not count)."""
    toks = _lex(text, text, 0)
    out = []
    for i, t in enumerate(toks[:-1]):
        if t.kind == "name" and t.value == function and toks[i + 1].kind == "(":
            depth = 0
            for u in toks[i + 1 :]:
                depth += {"(": 1, ")": -1}.get(u.kind, 0)
                if depth == 0:
                    out.append(text[t.start : u.end])
                    break
    return out


def call_arguments(call: str) -> tuple[list[str], dict[str, str]]:
    """The arguments of one call ``f(a, b, name = c)`` as R text: positional ones in order and
    named ones by name (R's tokens: commas inside strings or nested calls do not split)."""
    toks = _lex(call, call, 0)
    positional: list[str] = []
    named: dict[str, str] = {}
    depth, start, name = 0, None, None
    for i, t in enumerate(toks):
        if t.kind == "(":
            depth += 1
            if depth == 1:
                start, name = i + 1, None
                continue
        elif t.kind == ")":
            depth -= 1
        if depth == 1 and t.kind == "=" and name is None and i == start + 1:
            name = toks[start].value
            continue
        if (depth == 1 and t.kind == ",") or (depth == 0 and t.kind == ")"):
            first = start + (2 if name is not None else 0)
            if first < i:
                text = call[toks[first].start : toks[i - 1].end]
                if name is None:
                    positional.append(text)
                else:
                    named[name] = text
            start, name = i + 1, None
            if depth == 0:
                break
    return positional, named


def formulaic_name(text: str, columns: Collection[str]) -> str:
    """The name formulaic gives the R expression ``text`` (a call, with the data's ``columns``):
    the key of its state in a model spec's ``transform_state``."""
    return _formulaic_label(translate(text, columns).text.strip())


def check(text: str, columns: Collection[str], *, formula: str | None = None, start: int = 0) -> list[str]:
    """Check that an R formula fragment uses only the vocabulary and the data's columns.

    Parameters
    ----------
    text : str
        A fixed-effects right-hand side, one of its terms, a bar term's left
        side or the response, in R syntax (``"Days + log(x) + C(f, Sum)"``).
    columns : collection of str
        The data's column names.
    formula : str, optional
        The whole formula, shown in messages with a caret; ``text`` then starts
        at ``start`` in it. Without it the caret is under ``text``.
    start : int
        Where ``text`` starts in ``formula``.

    Returns
    -------
    list of str
        The columns the fragment uses, in order of first appearance.

    Raises
    ------
    FormulaError
        Naming the construct or name at fault, with a caret under it.
    """
    shown = text if formula is None else formula
    at = 0 if formula is None else start
    cols = columns if isinstance(columns, (set, frozenset, dict)) else set(columns)
    used, _ = _resolve_names(_read(text, shown, at), cols, shown, at)
    return used


def variables(text: str) -> list[str]:
    """The names that ``text`` uses as values (back-quotes removed), in order of first
    appearance: every column it can use, and the constants among them. No data needed."""
    out: list[str] = []
    reading = _read(text, text, 0)
    for k in reading.values:
        v = reading.tokens[k].value
        if v not in out:
            out.append(v)
    return out


def needed_variables(pf: "ParsedFormula", columns: list[str]) -> tuple[list[str], list[str], list[str]]:
    """Check a parsed formula against the vocabulary and the data; name the columns it uses.

    Every fragment (the response, each offset, each term of the fixed part, each bar
    term's left side) goes through :func:`check`, with a caret under the formula.

    Returns
    -------
    tuple of three lists of str
        (response and offset variables, fixed and term-column variables, grouping
        variables), each in order of first appearance. The grouping variables
        are not checked against ``columns`` here.
    """
    cols = set(columns)
    frags = pf.fragments
    if not frags:  # a ParsedFormula made by hand
        from sparselmm.spec.formula import Fragment

        frags = (Fragment("response", pf.response, 0), Fragment("fixed", pf.fixed, 0)) + tuple(
            Fragment("bar", b.lhs, 0) for b in pf.bars
        )
        shown = None
    else:
        shown = pf.formula
    resp: list[str] = []
    fixed: list[str] = []
    for role in ("response", "offset", "fixed", "bar"):
        for f in frags:
            if f.role == role:
                out = resp if role in ("response", "offset") else fixed  # an offset is numeric, as the response
                out += [v for v in check(f.text, cols, formula=shown, start=f.start) if v not in out]
    groups = [g for b in pf.bars for g in b.factors]
    return resp, fixed, groups


# ----------------------------------------------------------------------------------------
# formulaic's dialect


@dataclass(frozen=True)
class Translation:
    """An R fragment in formulaic's dialect.

    Attributes
    ----------
    text : str
        For formulaic: ``^`` inside calls as ``**``; columns that are not Python
        identifiers back-quoted; columns that Python or the vocabulary would
        read otherwise (``True``, ``log``) under an alias; words of the
        vocabulary under their :func:`python_name`.
    columns : tuple of str
        The data's columns used, in order of first appearance.
    renames : dict of str to str
        Column -> the alias it has in the frame given to formulaic.
    readback : dict of str to str
        Alias or python name -> how R writes it, to turn formulaic's column
        names back into R's.
    labels : dict of str to str
        formulaic's name of each call outside any call (``log(x + 1)``) -> R's label of it
        as the user wrote it (``log((x + 1))``: R keeps the parentheses).
    variables : tuple of str
        formulaic's names of the variables outside any call (columns, calls), in the order
        of their first appearance: R's ``terms()`` orders the factors of an interaction so.
    """

    text: str
    columns: tuple[str, ...]
    renames: Mapping[str, str]
    readback: Mapping[str, str]
    labels: Mapping[str, str] = field(default_factory=dict)
    variables: tuple[str, ...] = ()

    def r_spelling(self, formulaic_name: str) -> str:
        """``formulaic_name`` with every alias written as R writes the name."""
        if not self.readback:
            return formulaic_name
        pattern = "|".join(re.escape(a) for a in sorted(self.readback, key=len, reverse=True))
        alias = re.compile(rf"(?<![A-Za-z0-9_.])(?:{pattern})(?![A-Za-z0-9_])")
        return alias.sub(lambda m: self.readback[m.group(0)], formulaic_name)


def _needs_alias(name: str) -> bool:
    """A column that formulaic cannot find under its own name: a Python keyword (``True``,
    ``None``), the name of a word (the word would shadow it or it the word) or a dunder name."""
    return (
        keyword.iskeyword(name)
        or name in _python_names()
        or name.startswith("__")
        or (name.isidentifier() and unicodedata.normalize("NFKC", name) != name)  # Python reads it as another name
    )


def _r_quoted(name: str) -> str:
    return name if _R_NAME.fullmatch(name) else f"`{name}`"


def translate(text: str, columns: Collection[str]) -> Translation:
    """Check ``text`` (see :func:`check`) and write it in formulaic's dialect.

    Parameters
    ----------
    text : str
        An R formula fragment.
    columns : collection of str
        The columns of the frame that formulaic will get.

    Returns
    -------
    Translation
    """
    cols = columns if isinstance(columns, (set, frozenset, dict)) else set(columns)
    reading = _read(text, text, 0)
    used, roles = _resolve_names(reading, cols, text, 0)
    taken = set(cols) | set(_python_names())
    renames: dict[str, str] = {}
    for c in used:
        if _needs_alias(c):
            base = "_" + re.sub(r"[^A-Za-z0-9_]", "_", c) + "_"
            alias, i = base, 1
            while alias in taken or alias in text:
                alias, i = f"{base}{i}_", i + 1
            taken.add(alias)
            renames[c] = alias
    readback = {a: _r_quoted(c) for c, a in renames.items()}
    calls = set(reading.calls)
    out: list[str] = []
    pos = 0
    for k, t in enumerate(reading.tokens):
        out.append(" " if text[pos : t.start] and k else "")  # whitespace as one plain space (Python's tokens)
        pos = t.end
        if t.kind == "name":
            if roles.get(k) == "column":
                c = t.value
                out.append(renames.get(c) or (c if c.isidentifier() else f"`{c}`"))
            elif k in calls or roles.get(k) == "word":
                w = VOCABULARY[t.value]
                py = w.source.partition(":")[2] if w.source.startswith("python:") else python_name(t.value)
                if py != t.value:
                    readback[py] = t.value
                out.append(py)
            else:  # an argument's name (reading.keywords): R's dotted names in Python's spelling
                out.append(t.text.replace(".", "_"))
        elif t.kind == "number":
            out.append(t.value)
        elif t.kind == "op" and t.text == "^" and t.in_call:
            out.append("**")
        elif t.kind == "op" and t.text == "%in%":  # R's nesting: b %in% a is the term a:b (no main
            out.append(":")  # effect; formulaic would read it as b/a); it binds looser than ':', as ':' does to '*'
        else:
            out.append(t.text)
    pieces = [out[2 * k] + out[2 * k + 1] for k in range(len(reading.tokens))]
    labels: dict[str, str] = {}
    order: list[str] = []  # formulaic's names of the variables outside any call, as R's terms() orders them
    spans = dict(_top_calls(reading.tokens))
    for k, t in enumerate(reading.tokens):
        if k in spans:
            key = _formulaic_label("".join(pieces[k : spans[k]]).strip())
            labels[key] = r_label([("column" if roles.get(i) == "column" else u.kind, u.text)
                                   for i, u in enumerate(reading.tokens[k : spans[k]], k)])
            order.append(key)
        elif t.kind == "name" and not t.in_call and roles.get(k) == "column":
            order.append(renames.get(t.value, t.value))
    return Translation("".join(out), tuple(used), MappingProxyType(renames), MappingProxyType(readback),
                       MappingProxyType(labels), tuple(dict.fromkeys(order)))


def _top_calls(toks: tuple[_Tok, ...]) -> list[tuple[int, int]]:
    """Token spans ``[i, j)`` of the calls outside any call (the factors formulaic names)."""
    spans = []
    for i, t in enumerate(toks[:-1]):
        if t.kind == "name" and not t.in_call and toks[i + 1].kind == "(":
            depth = 0
            for j in range(i + 1, len(toks)):
                depth += {"(": 1, ")": -1}.get(toks[j].kind, 0)
                if depth == 0:
                    spans.append((i, j + 1))
                    break
    return spans


def _formulaic_label(expr: str) -> str:
    """The name formulaic gives the factor ``expr`` (Python's unparse of it; back-quoted names kept)."""
    hidden, names = hide_quoted(expr)
    try:
        text = ast.unparse(ast.parse(hidden, mode="eval")).replace("\n", " ")
    except (SyntaxError, ValueError, RecursionError):
        return expr
    return show_quoted(text, names, lambda n: f"`{n}`")


def to_formulaic(text: str, columns: Collection[str]) -> str:
    """Translate an R formula fragment to formulaic's dialect (see :class:`Translation`).

    ``^`` inside a function call (``I(x^2)``, ``log(x^2)``) is R's power and
    becomes ``**``; column names that are not Python identifiers
    (``ground.beef``, ``x-y``) are back-quoted. Raises FormulaError for
    anything outside the vocabulary.
    """
    return translate(text, columns).text


# ----------------------------------------------------------------------------------------
# new data


def formulaic_frame(data: Any, columns: Collection[str], renames: Mapping[str, str]) -> Any:
    """The frame formulaic evaluates a fragment on: the ``columns`` of ``data`` under their
    :attr:`Translation.renames`, integer columns as doubles (R's numbers are doubles:
    ``Days^-1`` is a number, not numpy's refusal of a negative integer power)."""
    import pandas

    out = {}
    for c in columns:
        col = data[c]
        if pandas.api.types.is_integer_dtype(col.dtype) and not pandas.api.types.is_bool_dtype(col.dtype):
            col = col.astype("float64")
        out[renames.get(c, c)] = col
    return pandas.DataFrame(out, index=data.index, copy=False)


class ClosedSpec:
    """A formulaic ``ModelSpec`` whose model matrices for new data are built as the fit's was.

    :meth:`get_model_matrix` gives formulaic only the columns the fragment
    uses, under the names it used (:attr:`Translation.renames`), and the
    closed :func:`namespace` as context, so prediction reaches neither the
    caller's frame nor other columns of the new data, nor Python's builtins.

    Parameters
    ----------
    spec : formulaic.ModelSpec
    columns : sequence of str
        The data columns the fragment uses.
    renames : mapping of str to str
        Column -> the name formulaic knows it by.
    terms : tuple
        The fixed part's terms (:class:`sparselmm.frame.modelframe.FixedTerm`), where the spec
        is one.
    """

    def __init__(self, spec: Any, columns: tuple[str, ...], renames: Mapping[str, str], terms: tuple = ()) -> None:
        self.spec = spec
        self.columns = tuple(columns)
        self.renames = dict(renames)
        self.terms = tuple(terms)

    def get_model_matrix(self, data: Any, **kwargs: Any) -> Any:
        """The model matrix of ``data`` (a pandas DataFrame); keyword arguments go to formulaic."""
        missing = [c for c in self.columns if c not in data.columns]
        if missing:
            raise DataError(f"new data lack column(s) {missing}")
        frame = formulaic_frame(data, self.columns, self.renames)
        kwargs.pop("context", None)
        return self.spec.get_model_matrix(frame, context=namespace(), **kwargs)

    def __getattr__(self, name: str) -> Any:  # the rest of formulaic's ModelSpec
        if name.startswith("__") or name in ("spec", "columns", "renames", "terms"):
            raise AttributeError(name)
        return getattr(self.spec, name)

    def __repr__(self) -> str:
        return f"ClosedSpec({self.spec!r})"
