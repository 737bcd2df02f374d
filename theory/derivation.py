"""Derivation objects: a result together with the named, machine-checked steps that produce it.

A :class:`Derivation` is a list of :class:`Step` s.  Each step states an identity ``lhs = rhs``
(SymPy scalars or matrices) with a justification, and knows how to check itself: by default
``simplify(lhs - rhs) == 0``; a step may instead carry its own ``checker`` (for instance a limit,
or a numeric check on a random instance).  ``Derivation.check()`` runs every step and records
which ones held, and the object renders to LaTeX / Markdown for the reports.

Rendering (:meth:`Derivation.to_latex`, :meth:`Derivation.to_markdown`) shows what each step
checks, never a tautology: a step whose two sides evaluate to the same value (``1 = 1``, the same
matrix twice) is shown by its stated equation (its name) and the common value; a numeric check
whose sides are words (``"dense" = "Hadamard form"``) is shown in words, not in math mode; an
optional ``display`` (an expression or relation, e.g. ``sp.Ne(correction, 0)``) replaces
``lhs = rhs``.  Expressions are printed with SymPy's LaTeX printer and broken into lines that fit
a page (:func:`fit_lines`); numbers with long exact forms are shown rounded, matrices too large to
print by their shape and a corner (:func:`printable`).

Example
-------
>>> import sympy as sp
>>> a, b = sp.symbols("a b")
>>> d = Derivation("square of a sum", r"(a+b)^2 = a^2 + 2ab + b^2")
>>> _ = d.add_step("expand", (a + b) ** 2, a**2 + 2 * a * b + b**2, "binomial expansion")
>>> d.check()
True
>>> d.steps[0].status
'checked'
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional, Tuple

import sympy as sp

__all__ = ["Derivation", "Step", "LINE_WIDTH", "is_prose", "prose_words", "upright_labels", "latex_width",
           "fit_lines", "printable", "Printed", "math_block", "display_formula", "relation_parts", "aligned_rows"]


def _is_zero(expr) -> bool:
    """True when a SymPy scalar or matrix simplifies to zero."""
    if isinstance(expr, sp.MatrixBase):
        return all(_is_zero(e) for e in expr)
    expr = sp.sympify(expr)
    if expr == 0:
        return True
    simplified = sp.simplify(sp.piecewise_fold(expr))
    if simplified == 0:
        return True
    return bool(sp.simplify(sp.expand(simplified)) == 0)


# ----------------------------------------------------------------------------- rendering that fits a page
#: The width of one display line of the report, in units of about one math character at 10 pt
#: (a 17 cm text block holds about 80; the rest is room for list indentation and estimation error).
LINE_WIDTH = 66

#: A broken expression longer than this many lines is cut (its first lines and a note are shown).
MAX_LINES = 8

#: Arguments of these macros are words or names, not math.
_TEXT_MACROS = ("text", "mathrm", "operatorname", "textbf", "textit", "texttt", "textrm", "textsf", "mbox",
                "mathbf", "mathit", "mathsf", "mathtt", "mathcal", "mathbb", "mathfrak", "begin", "end", "hbox",
                "textnormal", "boldsymbol", "bm")
_TEXT_GROUP = re.compile(r"\\(?:%s)\*?\s*\{[^{}]*\}|\{\\(?:rm|it|bf|tt|sf|sc|em)\b[^{}]*\}" % "|".join(_TEXT_MACROS))
_LETTER_RUN = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}")
#: Two-letter runs that are words, not products of two variables.
_SHORT_WORDS = {"if", "or", "is", "of", "to", "as", "on", "at", "by", "be", "an", "so", "we", "no", "it"}


def prose_words(text: str) -> List[str]:
    r"""The words in a LaTeX formula: runs of three or more letters with a lowercase one, or a
    two-letter English word, that are neither LaTeX commands nor inside ``\text``-like arguments
    (``\text``, ``\mathrm``, ``\operatorname``, ``{\rm ...}``, environment names).  ``NL``, ``ji``,
    ``KFAC`` are products or labels of single-letter symbols and do not count.

    >>> prose_words(r"N P_Delta o P_Z = N I"), prose_words(r"\frac{N-1}{NL} + u_{ji} + G_{\mathrm{KFAC}}")
    (['Delta'], [])
    """
    out = []
    for word in _LETTER_RUN.findall(_TEXT_GROUP.sub(" ", str(text))):
        if (len(word) >= 3 and any(ch.islower() for ch in word)) or word in _SHORT_WORDS:
            out.append(word)
    return out


def is_prose(text: str) -> bool:
    r"""True when ``text`` holds words rather than a formula (:func:`prose_words` finds one).

    >>> is_prose("Hadamard form"), is_prose("N P_Delta o P_Z"), is_prose(r"\Theta^{(L)} = \sum_l \Theta_l")
    (True, True, False)
    >>> is_prose(r"\mathrm{rank}\,J_l = N\ \text{for every layer}"), is_prose("J G^+ J^T / N")
    (False, False)
    """
    return bool(prose_words(text))


_WORD_INDEX = re.compile(r"([_^])\{([A-Za-z]{3,})\}")


def upright_labels(tex: str) -> str:
    r"""Sub- and superscripts that are words set upright (``G_{unit}`` -> ``G_{\mathrm{unit}}``):
    a label is a name, not a product of variables.

    >>> upright_labels(r"J G_{unit}^+ + \Theta_{ij}")
    'J G_{\\mathrm{unit}}^+ + \\Theta_{ij}'
    """
    return _WORD_INDEX.sub(lambda m: m.group(0) if not any(c.islower() for c in m.group(2))
                           else f"{m.group(1)}{{\\mathrm{{{m.group(2)}}}}}", str(tex))


_TOKEN = re.compile(r"\\[A-Za-z]+\*?|\\.|\s+|.", re.S)
_SPACES = {"\\,": 0.3, "\\:": 0.4, "\\;": 0.5, "\\ ": 0.6, "~": 0.6, "\\quad": 1.8, "\\qquad": 3.6, "\\!": -0.3,
           "\\enspace": 0.9}
_RELATIONS = {"=", "<", ">", "\\le", "\\ge", "\\leq", "\\geq", "\\neq", "\\ne", "\\approx", "\\to", "\\equiv",
              "\\sim", "\\iff", "\\Rightarrow", "\\Leftarrow", "\\Leftrightarrow", "\\implies", "\\in", "\\notin",
              "\\subseteq", "\\mapsto", "\\propto"}
_BINARY = {"+", "-", "\\pm", "\\mp", "\\cdot", "\\times", "\\otimes", "\\circ", "\\oplus"}
_ZERO_WIDTH = {"\\left", "\\right", "\\bigl", "\\bigr", "\\Bigl", "\\Bigr", "\\biggl", "\\biggr", "\\big", "\\Big",
               "\\displaystyle", "\\textstyle", "\\scriptstyle", "\\limits", "\\nolimits", "&", "\\\\", "\\middle",
               "\\allowbreak", "\\nonumber", "\\notag"}
_NAMED = {"\\sin", "\\cos", "\\tan", "\\tanh", "\\log", "\\exp", "\\det", "\\min", "\\max", "\\lim", "\\sup",
          "\\inf", "\\arg", "\\ln", "\\erf", "\\sinh", "\\cosh", "\\arccos", "\\arcsin", "\\operatorname"}


def _tokens(tex: str) -> List[str]:
    return _TOKEN.findall(str(tex))


def _group_end(tokens: List[str], i: int) -> int:
    """Index one past the argument starting at ``tokens[i]`` (a ``{...}`` group or one token;
    leading spaces skipped)."""
    while i < len(tokens) and tokens[i].isspace():
        i += 1
    if i >= len(tokens):
        return i
    if tokens[i] != "{":
        return i + 1
    depth = 0
    for j in range(i, len(tokens)):
        depth += {"{": 1, "}": -1}.get(tokens[j], 0)
        if depth == 0:
            return j + 1
    return len(tokens)


def _arg(tokens: List[str], i: int) -> Tuple[List[str], int]:
    end = _group_end(tokens, i)
    arg = [t for t in tokens[i:end]]
    while arg and arg[0].isspace():
        arg = arg[1:]
    if arg and arg[0] == "{":
        arg = arg[1:-1]
    return arg, end


def _env_end(tokens: List[str], i: int) -> int:
    """``tokens[i]`` is ``\\begin``: the index one past its matching ``\\end{...}``."""
    depth = 0
    j = i
    while j < len(tokens):
        if tokens[j] == "\\begin":
            depth += 1
        elif tokens[j] == "\\end":
            depth -= 1
            if depth == 0:
                return _group_end(tokens, j + 1)
        j += 1
    return len(tokens)


def _matrix_width(body: List[str]) -> float:
    rows, row, cell = [], [], []
    depth = 0
    for t in body:
        depth += {"{": 1, "}": -1}.get(t, 0)
        if depth == 0 and t == "&":
            row.append(cell)
            cell = []
        elif depth == 0 and t == "\\\\":
            row.append(cell)
            rows.append(row)
            row, cell = [], []
        else:
            cell.append(t)
    if cell or row:
        row.append(cell)
        rows.append(row)
    cols = max((len(r) for r in rows), default=0)
    widths = [max((_width(r[c]) for r in rows if c < len(r)), default=0.0) for c in range(cols)]
    return sum(widths) + 1.6 * max(cols - 1, 0) + 1.5


def _width(tokens: List[str]) -> float:
    total, i = 0.0, 0
    while i < len(tokens):
        t = tokens[i]
        if t.isspace() or t in ("{", "}") or t in _ZERO_WIDTH:
            i += 1
        elif t in ("^", "_"):
            arg, i = _arg(tokens, i + 1)
            total += 0.7 * _width(arg)
        elif t in ("\\frac", "\\dfrac", "\\tfrac", "\\binom", "\\genfrac"):
            a, i = _arg(tokens, i + 1)
            b, i = _arg(tokens, i)
            total += max(_width(a), _width(b)) * (0.75 if t == "\\tfrac" else 1.0) + 0.4
        elif t == "\\sqrt":
            j = i + 1
            if j < len(tokens) and tokens[j] == "[":
                while j < len(tokens) and tokens[j] != "]":
                    j += 1
                j += 1
            arg, i = _arg(tokens, j)
            total += 1.0 + _width(arg)
        elif t.rstrip("*")[1:] in _TEXT_MACROS and t not in ("\\begin", "\\end"):
            arg, i = _arg(tokens, i + 1)
            words = t in ("\\text", "\\textbf", "\\textit", "\\texttt", "\\textrm", "\\mbox", "\\textnormal")
            total += 0.85 * len("".join(arg)) if words else _width(arg)
        elif t == "\\begin":
            end = _env_end(tokens, i)
            name, body_start = _arg(tokens, i + 1)
            body = tokens[body_start:end]
            # drop the trailing \end{...}
            k = len(body) - 1
            while k >= 0 and body[k] != "\\end":
                k -= 1
            body = body[:k] if k >= 0 else body
            total += _matrix_width(body)
            i = end
        elif t in _SPACES:
            total += _SPACES[t]
            i += 1
        elif t in _RELATIONS or t in _BINARY:
            total += 3.4 if t in ("\\iff", "\\Rightarrow", "\\Leftrightarrow", "\\implies") else 2.3
            i += 1
        elif t in ("\\sum", "\\prod", "\\int", "\\bigcup", "\\bigcap"):
            total += 1.7
            i += 1
        elif t in _NAMED:
            total += 0.9 * (len(t) - 1) + 0.4
            i += 1
        elif t in ("\\cdots", "\\ldots", "\\dots", "\\vdots", "\\ddots"):
            total += 2.0
            i += 1
        elif t.startswith("\\"):
            total += 1.0
            i += 1
        elif t in ",;.":
            total += 0.5
            i += 1
        elif t in "()[]|":
            total += 0.7
            i += 1
        else:
            total += 1.0
            i += 1
    return total


def latex_width(tex: str) -> float:
    r"""The estimated printed width of a LaTeX formula, in units of about one math character at
    10 pt (fractions count their wider part, sub/superscripts 0.7, matrices their columns).

    >>> latex_width("a + b") == latex_width("a") + latex_width("+") + latex_width("b")
    True
    >>> latex_width(r"\frac{a}{bcd}") < latex_width("a / bcd")
    True
    """
    return _width(_tokens(tex))


def _depths(tokens: List[str]) -> List[int]:
    """The nesting depth before each token: ``{}`` groups, ``\\left``/``\\right`` pairs and
    environments (a line may break only at depth 0)."""
    out, depth = [], 0
    for t in tokens:
        if t in ("}", "\\right", "\\end"):
            depth -= 1
        out.append(depth)
        if t in ("{", "\\left", "\\begin"):
            depth += 1
    return out


def _segments(tokens: List[str]) -> List[List[str]]:
    """Split at depth 0: before a relation or a binary + / -, after ``\\quad``-like space and after
    a comma or semicolon followed by space."""
    depths = _depths(tokens)
    segs, cur = [], []
    for i, t in enumerate(tokens):
        starts = depths[i] == 0 and (t in _RELATIONS or t in ("+", "-", "\\pm", "\\mp"))
        meaningful = [x for x in cur if not x.isspace()]
        if starts and meaningful and meaningful[-1] not in _RELATIONS | _BINARY | {"{", "(", "[", "^", "_"}:
            segs.append(cur)
            cur = []
        cur.append(t)
        if depths[i] == 0 and t in ("\\quad", "\\qquad"):
            segs.append(cur)
            cur = []
    if cur:
        segs.append(cur)
    return segs


def _open_widest(tokens: List[str]) -> Optional[List[str]]:
    """Turn the widest depth-0 ``\\left X ... \\right Y`` pair whose inside can break into
    ``\\bigl X ... \\bigr Y`` (fixed-size delimiters may end on different lines); None if none."""
    depths = _depths(tokens)
    best, best_w = None, 0.0
    for i, t in enumerate(tokens):
        if t == "\\left" and depths[i] == 0:
            depth = 0
            for j in range(i, len(tokens)):
                if tokens[j] in ("{", "\\left", "\\begin"):
                    depth += 1
                elif tokens[j] in ("}", "\\right", "\\end"):
                    depth -= 1
                    if depth == 0 and tokens[j] == "\\right":
                        inner = tokens[i + 2:j]
                        if len(_segments(inner)) > 1 or _open_widest(inner) is not None:
                            w = _width(inner)
                            if w > best_w:
                                best, best_w = (i, j), w
                        break
    if best is None:
        return None
    i, j = best
    out = list(tokens)
    for k, size in ((i, "\\bigl"), (j, "\\bigr")):
        out[k] = size if out[k + 1] != "." else ""
        if out[k + 1] == ".":
            out[k + 1] = ""
    return out


def _join(tokens: List[str]) -> str:
    text = ""
    for t in tokens:
        # a control word followed by a letter needs the space the tokeniser may have dropped
        if text and re.search(r"\\[A-Za-z]+$", text) and t[:1].isalpha():
            text += " "
        text += t
    return text.strip()


def fit_lines(tex: str, width: float = LINE_WIDTH, first: float = 0.0, max_lines: int = MAX_LINES
              ) -> Tuple[List[str], bool]:
    r"""Break a LaTeX formula into lines of at most ``width`` units (the first line has ``first``
    units less): at depth-0 relations, + and -, and after ``\quad``; a ``\left( ... \right)`` too
    wide for a line is opened (``\bigl( ... \bigr)``) and broken inside.  Returns ``(lines,
    cut)``; ``cut`` is True when more than ``max_lines`` lines were needed and only the first are
    returned.  A part that cannot break (a long fraction, a matrix) stays whole.

    >>> fit_lines("a + b", 80)
    (['a + b'], False)
    >>> lines, cut = fit_lines(" + ".join(f"x_{{{i}}}" for i in range(40)), 30)
    >>> len(lines) > 1 and all(latex_width(line) <= 30 for line in lines), cut
    (True, False)
    """
    tokens = _tokens(tex)
    while True:
        segs = _segments(tokens)
        budget = lambda n: width - (first if n == 0 else 2.0)  # continuation lines are indented by \quad
        too_wide = [s for s in segs if _width(s) > budget(1)]
        if not too_wide:
            break
        opened = _open_widest(tokens)
        if opened is None:
            break
        tokens = opened
    lines, cur, cur_w = [], [], 0.0
    for seg in segs:
        w = _width(seg)
        if cur and cur_w + w > budget(len(lines)):
            lines.append(cur)
            cur, cur_w = [], 0.0
        cur += seg
        cur_w += w
    if cur:
        lines.append(cur)
    out = []
    for line in lines:
        text = _join(line)
        text = re.sub(r"^(\\q?quad\s*)+|(\s*\\q?quad)+$", "", text).strip()
        if text:
            out.append(text)
    if len(out) > max_lines:
        return out[:max_lines], True
    return out, False


@dataclass
class Printed:
    """How an object is printed: ``tex`` (a LaTeX formula, None when it is not printed) and
    ``note`` (words: what was summarised or rounded, or the whole description when ``tex`` is None)."""

    tex: Optional[str]
    note: str = ""


def _number_tex(x: float, digits: int = 4) -> str:
    text = f"{x:.{digits}g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        return rf"{mantissa} \times 10^{{{int(exponent)}}}"
    return text


def _entry(value: Any, rounded: bool) -> str:
    if rounded and getattr(value, "is_number", False) and not getattr(value, "is_Integer", False):
        try:
            return _number_tex(float(value), 3)
        except (TypeError, ValueError):
            pass
    return sp.latex(value)


def _matrix_tex(rows: List[List[str]], more_rows: bool, more_cols: bool) -> str:
    body = []
    for row in rows:
        body.append(" & ".join(row + ([r"\cdots"] if more_cols else [])))
    if more_rows:
        body.append(" & ".join([r"\vdots"] * len(rows[0]) + ([r"\ddots"] if more_cols else [])))
    return r"\begin{bmatrix}" + r" \\ ".join(body) + r"\end{bmatrix}"


def printable(obj: Any, width: float = LINE_WIDTH) -> Printed:
    r"""``obj`` as the report prints it: SymPy's LaTeX, long exact numbers rounded (``\approx``),
    matrices too large for a line by their shape and top-left corner, strings of words as words.

    >>> printable(sp.Rational(10**30 + 1, 3 * 10**30)).tex
    '\\approx 0.3333'
    >>> printable(sp.zeros(0, 1)).note
    'an empty 0 x 1 matrix'
    >>> printable(sp.eye(12)).note
    'a 12 x 12 matrix; its top-left corner is shown'
    >>> printable("Hadamard form")
    Printed(tex=None, note='Hadamard form')
    """
    if obj is None:
        return Printed(None, "nothing")
    if isinstance(obj, str):
        return Printed(None, obj) if is_prose(obj) else Printed(obj)
    if isinstance(obj, bool):
        return Printed(None, "true" if obj else "false")
    if isinstance(obj, sp.MatrixBase):
        r, c = obj.shape
        if r == 0 or c == 0:
            return Printed(None, f"an empty {r} x {c} matrix")
        rounded = any(e.is_number and len(sp.latex(e)) > 14 for e in obj)
        prefix, note = (r"\approx ", "entries rounded to 3 digits") if rounded else ("", "")
        cells = [[_entry(obj[i, j], rounded) for j in range(c)] for i in range(r)]
        full = _matrix_tex(cells, False, False)
        if r <= 8 and latex_width(prefix + full) <= width:
            return Printed(prefix + full, note)
        for k in (4, 3, 2, 1):
            corner = _matrix_tex([row[:k] for row in cells[:k]], r > k, c > k)
            if latex_width(prefix + corner) <= width:
                what = f"a {r} x {c} matrix; its top-left corner is shown"
                return Printed(prefix + corner, what + (f", {note}" if note else ""))
        return Printed(None, f"a {r} x {c} matrix whose entries are too long to print")
    try:
        expr = sp.sympify(obj)
    except (sp.SympifyError, TypeError, ValueError):
        return Printed(None, str(obj))
    if expr.is_number and expr.is_real is not False and len(sp.latex(expr)) > 16:
        try:
            return Printed(r"\approx " + _number_tex(float(expr)), "rounded to 4 significant digits")
        except (TypeError, ValueError):
            pass
    tex = sp.latex(expr)
    lines, _ = fit_lines(tex, width, max_lines=10**6)
    if max(latex_width(line) for line in lines or [""]) <= width:
        return Printed(tex)
    numer, denom = sp.fraction(sp.together(expr))
    if denom != 1:  # a fraction too wide for a line: numerator and denominator in breakable brackets
        tex = r"\left(" + sp.latex(numer) + r"\right) \Big/ \left(" + sp.latex(denom) + r"\right)"
        lines, _ = fit_lines(tex, width, max_lines=10**6)
        if max(latex_width(line) for line in lines or [""]) <= width:
            return Printed(tex)
    return Printed(None, f"an expression too wide to print ({len(sp.Add.make_args(sp.expand(numer)))} terms)")


def _is_trivial_value(value: Any) -> bool:
    """0, 1 and booleans: the value of an indicator, which says nothing beyond "the step holds"."""
    if isinstance(value, (bool, int)) or getattr(value, "is_Integer", False) or getattr(value, "is_Boolean", False):
        try:
            return bool(value in (0, 1) or value in (sp.true, sp.false))
        except TypeError:
            return False
    return False


def _same(lhs: Any, rhs: Any) -> bool:
    """Both sides are the same value (so ``lhs = rhs`` would print a tautology)."""
    if isinstance(lhs, str) or isinstance(rhs, str):
        return isinstance(lhs, str) and isinstance(rhs, str) and lhs.strip() == rhs.strip()
    try:
        if isinstance(lhs, sp.MatrixBase) or isinstance(rhs, sp.MatrixBase):
            if not (isinstance(lhs, sp.MatrixBase) and isinstance(rhs, sp.MatrixBase)) or lhs.shape != rhs.shape:
                return False
            return all(bool(sp.sympify(a) == sp.sympify(b)) for a, b in zip(lhs, rhs))
        if bool(sp.sympify(lhs) == sp.sympify(rhs)):
            return True
    except (sp.SympifyError, TypeError, ValueError):
        return False
    return sp.latex(lhs) == sp.latex(rhs)


def math_block(rows: List[str], markdown: bool = False, environment: str = "aligned") -> str:
    r"""A display of already broken rows (``&`` marks alignment): ``\[ row \]`` for one row without
    ``&``, else an ``aligned`` (or ``gathered``) block; ``markdown=True`` uses ``$$ ... $$``.

    >>> math_block(["a = b"])
    '\\[ a = b \\]'
    >>> print(math_block(["& a", r"&\quad + b"], markdown=True))
    $$
    \begin{aligned}
    & a \\
    &\quad + b
    \end{aligned}
    $$
    """
    open_, close = ("$$\n", "\n$$") if markdown else ("\\[", "\\]")
    if len(rows) == 1:  # one row needs no alignment: drop the leading "&" of an aligned row
        row = re.sub(r"^&\s*", "", rows[0])
        return f"$$ {row} $$" if markdown else r"\[ " + row + r" \]"
    return (open_ + f"\\begin{{{environment}}}\n" + " \\\\\n".join(rows) + f"\n\\end{{{environment}}}" + close)


def display_formula(tex: str, width: float = LINE_WIDTH, markdown: bool = False) -> str:
    r"""A LaTeX statement as a display that fits the page: broken at its top-level ``\quad``,
    relations and + / - into centred lines (``gathered``) when it is too wide for one.

    >>> display_formula(r"a = b")
    '\\[ a = b \\]'
    """
    lines, _ = fit_lines(upright_labels(tex), width, max_lines=100)
    return math_block(lines or [str(tex)], markdown=markdown, environment="gathered")


def aligned_rows(lines: List[str]) -> List[str]:
    """Rows of an ``aligned`` block from broken lines: the first at the margin, the rest indented."""
    return ["& " + lines[0]] + [r"&\quad " + line for line in lines[1:]] if len(lines) > 1 else list(lines)


_REL_TEX = {"==": "=", "!=": r"\neq", "<": "<", "<=": r"\le", ">": ">", ">=": r"\ge"}


def _side(p: Printed) -> str:
    return p.tex if p.tex is not None else r"\text{(" + p.note + ")}"


def relation_parts(lhs: Any, rel: str, rhs: Any, width: float = LINE_WIDTH) -> List[Tuple[str, Any]]:
    r"""The parts that show ``lhs rel rhs``: ``[("display", rows), ("text", note), ...]``; rows fit
    ``width`` (an ``aligned`` block: the relation aligned, long sides broken and indented).

    >>> relation_parts(sp.Symbol("a"), "=", sp.Symbol("b"))
    [('display', ['a = b'])]
    """
    pl, pr = printable(lhs, width), printable(rhs, width)
    notes = [f"{side}: {p.note}" for side, p in (("left side", pl), ("right side", pr)) if p.note]
    left, right = _side(pl), _side(pr)
    one = f"{left} {rel} {right}"
    parts: List[Tuple[str, Any]] = []
    if latex_width(one) <= width:
        parts.append(("display", [one]))
    else:
        wl = latex_width(left)
        if wl <= 0.45 * width and len(fit_lines(left, width)[0]) == 1:
            rlines, cut = fit_lines(right, width - wl - 2.0)
            rows = ([f"{left} &{rel} {rlines[0]}"] + [r"&\quad " + line for line in rlines[1:]] if len(rlines) > 1
                    else [f"{left} {rel} {rlines[0]}"])
        else:
            llines, cut_l = fit_lines(left, width)
            rlines, cut = fit_lines(right, width - 3.0)
            if cut_l:
                llines[-1] += r" + \cdots"
                notes.append(f"left side: its first {len(llines)} lines")
            rows = (["& " + llines[0]] + [r"&\quad " + line for line in llines[1:]]
                    + [f"&{rel} " + rlines[0]] + [r"&\quad " + line for line in rlines[1:]])
        if cut:
            rows[-1] += r" + \cdots"
            notes.append(f"right side: its first {len(rlines)} lines")
        parts.append(("display", rows))
    parts += [("text", note[0].upper() + note[1:] + ".") for note in notes]
    return parts


def _sentence(words: str, text: Callable[[str], str]) -> str:
    """`` words.`` (a period added unless it ends in punctuation); "" for no words."""
    words = " ".join(str(words or "").split())
    if not words:
        return ""
    return " " + text(words if words[-1] in ".!?" else words + ".")


def _after(body: str) -> str:
    """``body`` appended to a sentence: after a space, or on its own line when it starts with a display."""
    return "" if not body else (body if body.startswith("\n") else " " + body)


def _md_words(words: str) -> str:
    """Words for Markdown emphasis: ``*`` and backquotes escaped."""
    return str(words).replace("*", "\\*").replace("`", "\\`")


def _plain_tex(text: str) -> str:
    """Words to LaTeX text (``$...$`` kept as math, specials escaped): the default of
    :meth:`Derivation.to_latex` (the report passes its own, which also maps Unicode)."""
    special = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "#": r"\#", "_": r"\_", "{": r"\{",
               "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}",
               ">": r"\textgreater{}", "|": r"\textbar{}"}
    pieces = re.split(r"(\$[^$]+\$)", str(text))
    return "".join(p if p.startswith("$") and p.endswith("$") and len(p) > 1 else
                   "".join(special.get(ch, ch) for ch in p) for p in pieces)


def _render_parts(parts: List[Tuple[str, Any]], text: Callable[[str], str], markdown: bool) -> str:
    out = ""
    for kind, value in parts:
        if kind == "display":
            block = math_block(value, markdown=markdown)
            out = out.rstrip() + "\n" + block + "\n"
            continue
        piece = text(value) if kind == "text" else (f"${value}$" if markdown else r"\(" + value + r"\)")
        if out and not out.endswith("\n") and not piece[:1] in ".,;:)":
            out += " "
        out += piece
    return out.strip(" ").rstrip()


@dataclass
class Step:
    """One identity of a derivation.

    ``status`` is ``"unchecked"`` until :meth:`check` runs, then ``"checked"`` or ``"failed"``
    (``"error"`` if the checker raised; the message is kept in ``detail``).
    """

    name: str
    lhs: Any
    rhs: Any
    justification: str = ""
    checker: Optional[Callable[[], bool]] = None
    status: str = "unchecked"
    detail: str = ""
    #: what the reports show instead of ``lhs = rhs`` (a SymPy expression or relation such as
    #: ``sp.Ne(correction, 0)``, or a LaTeX string); ``None``: the step's own sides
    display: Any = None

    def check(self) -> bool:
        try:
            ok = bool(self.checker()) if self.checker is not None else _is_zero(self._difference())
        except Exception as exc:  # a checker that crashes has not verified anything
            self.status, self.detail = "error", f"{type(exc).__name__}: {exc}"
            return False
        self.status = "checked" if ok else "failed"
        return ok

    def _difference(self):
        lhs, rhs = self.lhs, self.rhs
        if isinstance(lhs, sp.MatrixBase) or isinstance(rhs, sp.MatrixBase):
            return sp.Matrix(lhs) - sp.Matrix(rhs)
        return sp.sympify(lhs) - sp.sympify(rhs)

    def latex(self) -> str:
        """The identity as one LaTeX string, unabridged (``results.json``; the reports use :meth:`parts`)."""
        if self.display is not None:
            return self.display if isinstance(self.display, str) else sp.latex(self.display)
        left = self.lhs if isinstance(self.lhs, str) else sp.latex(self.lhs)
        right = self.rhs if isinstance(self.rhs, str) else sp.latex(self.rhs)
        return f"{left} = {right}"

    def parts(self, width: float = LINE_WIDTH) -> List[Tuple[str, Any]]:
        """What the reports show for this step, as ``[(kind, value)]`` with kind ``"text"`` (words),
        ``"inline"`` (a short formula) or ``"display"`` (rows of an ``aligned`` block that fit
        ``width``): the ``display`` if one is set; words when a side is words (a numeric check
        named in prose); the common value when both sides evaluate to the same thing (the step's
        name states the equation; an indicator 0/1 adds nothing); else ``lhs = rhs``."""
        if self.display is not None:
            shown = self.display
            if isinstance(shown, sp.core.relational.Relational) and shown.rel_op in _REL_TEX:
                return relation_parts(shown.lhs, _REL_TEX[shown.rel_op], shown.rhs, width)
            p = printable(shown, width)
            if p.tex is None:
                return [("text", p.note)]
            lines, _ = fit_lines(p.tex, width)
            return [("display", aligned_rows(lines))] + ([("text", p.note[0].upper() + p.note[1:] + ".")] if p.note else [])
        lhs, rhs = self.lhs, self.rhs
        if any(isinstance(side, str) and is_prose(side) for side in (lhs, rhs)):
            return [("text", f"Compares {lhs} with {rhs}.")]
        if _same(lhs, rhs):
            if _is_trivial_value(lhs):
                return []
            p = printable(lhs, width)
            if p.tex is None:
                return [("text", f"Both sides evaluate to the same value: {p.note}.")]
            if latex_width(p.tex) <= 24 and "begin" not in p.tex:
                return [("text", "Both sides evaluate to"), ("inline", p.tex), ("text", ".")]
            lines, _ = fit_lines(p.tex, width)
            return ([("text", "Both sides evaluate to" + (f" ({p.note})" if p.note else "") + ":"),
                     ("display", aligned_rows(lines))])
        return relation_parts(lhs, "=", rhs, width)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "identity": self.latex(),
            "justification": self.justification,
            "status": self.status,
            "detail": self.detail,
        }


@dataclass
class Derivation:
    """A titled result, its assumptions and its checked steps."""

    title: str
    statement: str = ""  # LaTeX
    assumptions: List[str] = field(default_factory=list)
    steps: List[Step] = field(default_factory=list)
    conclusion: Any = None  # the derived object (SymPy expression, matrix, ...)

    def add_step(self, name: str, lhs, rhs, justification: str = "",
                 checker: Optional[Callable[[], bool]] = None, display: Any = None) -> Step:
        step = Step(name, lhs, rhs, justification, checker, display=display)
        self.steps.append(step)
        return step

    def check(self) -> bool:
        """Check every step (all of them, even after a failure) and return whether all held."""
        results = [step.check() for step in self.steps]
        return all(results)

    @property
    def verified(self) -> bool:
        return bool(self.steps) and all(s.status == "checked" for s in self.steps)

    def failed_steps(self) -> List[Step]:
        return [s for s in self.steps if s.status in ("failed", "error")]

    def to_latex(self, text: Optional[Callable[[str], str]] = None, width: float = LINE_WIDTH,
                 heading: str = r"\paragraph{%s}") -> str:
        """LaTeX that fits a page: the statement broken into lines, each step's name (the equation it
        states, in words) with its status and justification, then what it checks (:meth:`Step.parts`).
        ``text`` turns words into LaTeX text (default: specials escaped, ``$...$`` kept)."""
        text = text or _plain_tex
        lines = [heading % text(self.title)]
        if self.statement:
            lines.append(display_formula(self.statement, width))
        if self.assumptions:
            lines.append(r"\textit{Assumptions:} " + text("; ".join(map(str, self.assumptions))) + ".")
        if self.steps:
            lines.append(r"\begin{enumerate}")
            for s in self.steps:
                body = _render_parts(s.parts(width - 4), text, markdown=False)
                lines.append(r"\item \textbf{" + text(s.name) + "} (" + text(s.status) + ")." + _sentence(s.justification, text)
                             + _after(body) + (r" \textit{" + text(s.detail) + "}" if s.detail else ""))
            lines.append(r"\end{enumerate}")
        return "\n".join(lines)

    def to_markdown(self, width: float = LINE_WIDTH) -> str:
        """GitHub Markdown with ``$...$`` / ``$$...$$`` math: the same content as :meth:`to_latex`."""
        lines = [f"**{self.title}**", ""]
        if self.statement:
            lines += [display_formula(self.statement, width, markdown=True), ""]
        if self.assumptions:
            lines += ["*Assumptions:* " + "; ".join(map(str, self.assumptions)) + ".", ""]
        for i, s in enumerate(self.steps, 1):
            mark = {"checked": "✔", "failed": "✘", "error": "✘"}.get(s.status, "?")
            body = _render_parts(s.parts(width - 4), str, markdown=True)
            item = (f"{i}. {mark} **{_md_words(s.name)}** ({s.status})." + _sentence(s.justification, str)
                    + _after(body) + (f" *{s.detail}*" if s.detail else ""))
            lines.append(item.replace("\n", "\n   "))
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "title": self.title,
            "statement": self.statement,
            "assumptions": list(self.assumptions),
            "steps": [s.to_dict() for s in self.steps],
            "verified": self.verified,
            "conclusion": None if self.conclusion is None else str(self.conclusion),
        }

