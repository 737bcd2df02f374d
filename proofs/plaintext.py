"""Plain-text renderings for the terminal: LaTeX statements (:func:`latex_to_text`) and text that a
stream's encoding cannot carry (:func:`to_ascii`).

The registry keeps each claim's statement in LaTeX for the report; ``ngd-verify list`` prints it
with :func:`latex_to_text`, which knows the commands the statements use (Greek letters, ``\\frac``,
``\\text``, ``\\mathrm``, sub/superscripts, relations, spacing) and drops the backslash of any other.

>>> latex_to_text(r"J G_{\\mathrm{KFAC}}^{+} J^\\top/N = \\big(N(L-1)+1\\big)\\,I")
'J G_KFAC^+ J^T/N = (N(L-1)+1) I'
>>> latex_to_text(r"\\| J J^\\top - \\Theta \\|_F / \\|\\Theta\\|_F = O(M^{-1/2})")
'|| J J^T - Theta ||_F / ||Theta||_F = O(M^(-1/2))'
>>> latex_to_text(r"f_t(x')=f_0(x')-\\frac{1-(1-\\eta\\alpha)^t}{\\alpha}\\,\\Theta_G(x',X)")
"f_t(x')=f_0(x')-(1-(1-eta alpha)^t)/alpha Theta_G(x',X)"
>>> latex_to_text(r"(H_n - \\bar H)\\bar H^{+}")
'(H_n - Hbar)Hbar^+'
>>> to_ascii("width \\u2013, slope \\u22120.49 \\u00b1 0.04, \\u03b1 \\u2265 1")
'width -, slope -0.49 +- 0.04, alpha >= 1'
"""
from __future__ import annotations

import re
import unicodedata
from typing import List, Tuple

__all__ = ["latex_to_text", "to_ascii"]

_GREEK = ("alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu nu xi pi rho "
          "sigma tau upsilon phi varphi chi psi omega Gamma Delta Theta Lambda Xi Pi Sigma Upsilon Phi Psi Omega")
#: commands rendered as a word (a space separates them from a neighbouring letter or digit)
_WORDS = {name: name.replace("var", "") for name in _GREEK.split()}
_WORDS.update({"sum": "sum", "prod": "prod", "lim": "lim", "max": "max", "min": "min", "log": "log", "exp": "exp",
               "infty": "inf", "partial": "d", "nabla": "grad", "top": "T", "ell": "l", "det": "det", "tr": "tr",
               "sup": "sup", "inf": "inf", "forall": "for all", "exists": "exists", "sin": "sin", "cos": "cos",
               "tanh": "tanh", "rank": "rank"})
#: commands rendered as a symbol
_SYMBOLS = {"le": " <= ", "leq": " <= ", "ge": " >= ", "geq": " >= ", "neq": " != ", "ne": " != ", "ll": " << ",
            "gg": " >> ", "approx": " ~ ", "sim": " ~ ", "simeq": " ~ ", "equiv": " == ", "to": " -> ",
            "rightarrow": " -> ", "Rightarrow": " => ", "Leftarrow": " <= ", "iff": " <=> ", "Leftrightarrow": " <=> ",
            "implies": " => ", "mapsto": " -> ", "in": " in ", "notin": " not in ", "subset": " subset ",
            "cdot": " . ", "times": " x ", "odot": " (.) ", "otimes": " (x) ", "oplus": " (+) ", "circ": " o ",
            "pm": " +- ", "mp": " -+ ", "mid": " | ", "|": "||", "lceil": "ceil(", "rceil": ")", "lfloor": "floor(",
            "rfloor": ")", "langle": "<", "rangle": ">", "dots": "...", "ldots": "...", "cdots": "...",
            "#": "#", "_": "_", "{": "{", "}": "}", "%": "%", "&": "&", "$": "$", "prime": "'", "setminus": " \\ ",
            "cup": " u ", "cap": " n ", "emptyset": "{}", "vert": "|", "Vert": "||", "lvert": "|", "rvert": "|"}
_SPACES = {",": " ", ";": " ", ":": " ", " ": " ", "quad": "  ", "qquad": "  ", "!": "", "enspace": " ",
           "thinspace": " "}
#: commands that only change the size or style of what follows: dropped
_DROPPED = {"big", "Big", "bigg", "Bigg", "bigl", "bigr", "Bigl", "Bigr", "left", "right", "textstyle",
            "displaystyle", "scriptstyle", "limits", "nolimits", "rm", "bf", "it", "cal", "mathstrut", "middle"}
#: commands whose one argument is printed as it is
_TEXT_ARG = {"text", "textrm", "textit", "textbf", "texttt", "mathrm", "mathbf", "mathit", "mathcal", "mathsf",
             "mathtt", "mathbb", "boldsymbol", "bm", "operatorname", "mbox", "hbox", "emph", "mathnormal"}

_TOKEN = re.compile(r"\\[A-Za-z]+|\\.|[{}^_]|\s+|[^\\{}^_\s]")


class _Piece(str):
    """A rendered command word: spaced from neighbouring letters and digits."""


class _Script(str):
    """A rendered sub- or superscript: spaced from a letter or digit that follows."""


def _tokens(text: str) -> List[str]:
    return _TOKEN.findall(text)


def _join(pieces: List[str]) -> str:
    out = ""
    need_space = False
    for piece in pieces:
        if not piece:
            continue
        word = isinstance(piece, _Piece)
        if out and piece[0].isalnum() and (need_space is True or ((word or need_space) and out[-1].isalnum())):
            out += " "
        out += piece
        need_space = True if isinstance(piece, _Script) else word
    return out


class _Parser:
    def __init__(self, tokens: List[str]):
        self.tokens = tokens
        self.i = 0

    def peek(self) -> str:
        return self.tokens[self.i] if self.i < len(self.tokens) else ""

    def take(self) -> str:
        token = self.peek()
        self.i += 1
        return token

    def skip_space(self) -> None:
        while self.peek().isspace() and self.peek():
            self.i += 1

    def group(self) -> str:
        """Pieces up to the matching ``}`` (the ``{`` already taken), joined."""
        pieces = []
        while self.i < len(self.tokens) and self.peek() != "}":
            pieces.append(self.element())
        self.take()  # the closing brace (or the end)
        return _join(pieces)

    def argument(self) -> Tuple[str, bool]:
        """The next argument: ``(text, braced)``."""
        self.skip_space()
        token = self.peek()
        if token == "{":
            self.take()
            return self.group(), True
        if not token:
            return "", False
        return str(self.element()), False

    def optional(self) -> str:
        self.skip_space()
        if self.peek() != "[":
            return ""
        self.take()
        pieces = []
        while self.i < len(self.tokens) and self.peek() != "]":
            pieces.append(self.element())
        self.take()
        return _join(pieces)

    def element(self) -> str:
        token = self.take()
        if token == "{":
            return self.group()
        if token in ("^", "_"):
            text, _ = self.argument()
            text = text.strip()
            simple = re.fullmatch(r"[A-Za-z0-9']+|[+-]?[0-9]+|[+*-]|\([^()]*\)", text) is not None
            return _Script(token + (text if simple else f"({text})"))
        if token.isspace():
            return " "
        if not token.startswith("\\"):
            return token
        name = token[1:]
        if name in _SPACES:
            return _SPACES[name]
        if name in _DROPPED:
            return ""
        if name in _SYMBOLS:
            return _SYMBOLS[name]
        if name in _WORDS:
            return _Piece(_WORDS[name])
        if name in _TEXT_ARG:
            text, _ = self.argument()
            return _Piece(text) if text[:1].isalnum() and text[-1:].isalnum() else text
        if name in ("frac", "tfrac", "dfrac", "cfrac"):
            num, _ = self.argument()
            den, _ = self.argument()
            wrap = (lambda s: s if re.fullmatch(r"[A-Za-z0-9.]+|[A-Za-z]+_[A-Za-z0-9]+|\(.*\)", s.strip())
                    else f"({s.strip()})")
            return f"{wrap(num)}/{wrap(den)}"
        if name == "sqrt":
            index = self.optional()
            arg, _ = self.argument()
            return (f"root{index}" if index else "sqrt") + f"({arg.strip()})"
        if name in ("dot", "ddot", "hat", "tilde", "bar", "overline", "vec", "widehat", "widetilde", "underline"):
            arg, _ = self.argument()
            prefix = {"dot": "dot ", "ddot": "ddot "}.get(name, "")
            suffix = {"hat": "^", "widehat": "^", "tilde": "~", "widetilde": "~", "bar": "bar", "overline": "bar"}.get(
                name, "")
            return _Piece(f"{prefix}{arg}{suffix}") if arg[:1].isalnum() else f"{prefix}{arg}{suffix}"
        if name in ("not",):
            return "not "
        return _Piece(name)  # an unknown command: its name, without the backslash


def latex_to_text(text: str) -> str:
    """A one-line plain-ASCII rendering of a LaTeX math string (see the module docstring)."""
    parser = _Parser(_tokens(str(text)))
    pieces = []
    while parser.i < len(parser.tokens):
        token = parser.peek()
        if token == "}":  # an unbalanced brace: skip it
            parser.take()
            continue
        pieces.append(parser.element())
    result = _join(pieces)
    result = re.sub(r"[ \t\r\n]+", " ", result)
    result = re.sub(r"\( ", "(", result)
    result = re.sub(r" \)", ")", result)
    result = re.sub(r" ([,;])", r"\1", result)
    return to_ascii(result.strip())


_ASCII = {"\u2013": "-", "\u2014": "--", "\u2212": "-", "\u2010": "-", "\u2011": "-", "\u00b1": "+-",
          "\u00d7": "x", "\u2264": "<=", "\u2265": ">=", "\u2260": "!=", "\u2248": "~", "\u2192": "->",
          "\u2190": "<-", "\u21d2": "=>", "\u2208": " in ", "\u221e": "inf", "\u2211": "sum", "\u220f": "prod",
          "\u2207": "grad", "\u2202": "d", "\u221a": "sqrt", "\u2218": "o", "\u2299": "(.)", "\u2297": "(x)",
          "\u2026": "...", "\u00b7": ".", "\u2022": "*", "\u2018": "'", "\u2019": "'", "\u201c": '"',
          "\u201d": '"', "\u00a0": " ", "\u2009": " ", "\u202f": " ", "\u207a": "^+",
          "\u207b": "^-", "\u1d40": "^T", "\u2070": "^0", "\u00b9": "^1", "\u00b2": "^2", "\u00b3": "^3",
          "\u2074": "^4", "\u2075": "^5", "\u2076": "^6", "\u2077": "^7", "\u2078": "^8", "\u2079": "^9",
          "\u2080": "_0", "\u2081": "_1", "\u2082": "_2", "\u2083": "_3", "\u2113": "l", "\u2016": "||",
          "\u2308": "ceil(", "\u2309": ")", "\u230a": "floor(", "\u230b": ")", "\u27e8": "<", "\u27e9": ">",
          "\u2588": "#", "\u258f": "|", "\u258e": "|", "\u258d": "|", "\u258c": "|", "\u258b": "|",
          "\u258a": "|", "\u2589": "|", "\u2713": "ok", "\u2717": "x", "\u2714": "ok", "\u2718": "x"}
_GREEK_LETTERS = {unicodedata.lookup(f"GREEK {case} LETTER {name.upper()}"): (name if case == "SMALL" else
                                                                              name.capitalize())
                  for name in ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota",
                               "kappa", "lamda", "mu", "nu", "xi", "pi", "rho", "sigma", "tau", "upsilon", "phi",
                               "chi", "psi", "omega") for case in ("SMALL", "CAPITAL")}
_GREEK_LETTERS = {k: v.replace("amda", "ambda") for k, v in _GREEK_LETTERS.items()}


def to_ascii(text: str) -> str:
    """``text`` with every non-ASCII character replaced by an ASCII rendering (``\u2013`` -> ``-``,
    ``\u00b1`` -> ``+-``, Greek letters by their names, accents dropped; anything else ``?``)."""
    text = str(text)
    if text.isascii():
        return text
    out = []
    for ch in text:
        if ch.isascii():
            out.append(ch)
        elif ch in _ASCII:
            out.append(_ASCII[ch])
        elif ch in _GREEK_LETTERS:
            out.append(_GREEK_LETTERS[ch])
        else:
            decomposed = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
            out.append(decomposed if decomposed and decomposed.isascii() else "?")
    return "".join(out)
