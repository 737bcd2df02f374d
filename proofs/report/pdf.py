"""``report.pdf``: compile ``report.tex`` with pdflatex, and read what a compilation says.

* :func:`write_pdf` runs ``pdflatex`` twice in the report directory (non-interactive,
  ``-halt-on-error``, stdin closed, a timeout per run; the second run resolves the table of
  contents) and returns the path of ``report.pdf``.  Without pdflatex on ``PATH`` it raises
  :class:`PdfUnavailable` with what to install; a failed compilation raises :class:`PdfError`
  with the first errors of the log.  :func:`check_pdf_toolchain` is the same probe without
  compiling (run it before the claims, so a missing tool is reported before minutes of work).
* :func:`latex_log_problems` reads a ``.log``: overfull boxes (with their widths), undefined
  control sequences and other ``!`` errors.
* :func:`prose_in_math` scans a ``.tex`` for math containing words (a run of two or more
  letters that is not a macro nor the argument of ``\\text``-like macros): prose set in math mode
  prints as run-together italics ("dense=Hadamardform").

>>> prose_in_math(r"ok \\( a + b \\) and \\( dense = Hadamard form \\) and \\[ \\text{if } x \\]")
['dense = Hadamard form']
>>> latex_log_problems("Overfull \\\\hbox (12.5pt too wide) in paragraph at lines 3--4")["overfull"]
[(12.5, 'in paragraph at lines 3--4')]
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from theory.derivation import is_prose

__all__ = ["PdfError", "PdfUnavailable", "PDFLATEX_INSTALL_HINT", "pdflatex_path", "check_pdf_toolchain",
           "write_pdf", "latex_log_problems", "prose_in_math", "DEFAULT_TIMEOUT"]

#: Seconds one pdflatex run may take (the full report is about 130 pages: ~5 s on 2 cores).
DEFAULT_TIMEOUT = 300.0

PDFLATEX_INSTALL_HINT = ("install a TeX distribution with pdflatex (Debian/Ubuntu: apt-get install "
                         "texlive-latex-base texlive-latex-recommended lmodern; macOS: MacTeX), or leave out --pdf: "
                         "report.tex is written either way and compiles later with `pdflatex report.tex` (twice) "
                         "in the report directory")


class PdfError(RuntimeError):
    """pdflatex ran but did not produce the PDF (the message has the log's first errors)."""


class PdfUnavailable(PdfError):
    """pdflatex is not installed (the message says what to install)."""


def pdflatex_path() -> Optional[str]:
    """The pdflatex executable on ``PATH``, or None."""
    return shutil.which("pdflatex")


def check_pdf_toolchain() -> str:
    """The pdflatex path; :class:`PdfUnavailable` (what to install) when there is none."""
    path = pdflatex_path()
    if path is None:
        raise PdfUnavailable(f"--pdf needs pdflatex, which is not on PATH: {PDFLATEX_INSTALL_HINT}")
    return path


def write_pdf(out_dir, tex_name: str = "report.tex", timeout: float = DEFAULT_TIMEOUT, runs: int = 2) -> Path:
    """Compile ``out_dir/tex_name`` with pdflatex ``runs`` times and return the PDF's path.

    Raises :class:`PdfUnavailable` without pdflatex, :class:`PdfError` when a run fails or takes
    longer than ``timeout`` seconds (the message names the log and quotes its first errors).
    """
    exe = check_pdf_toolchain()
    out = Path(out_dir)
    tex = out / tex_name
    if not tex.is_file():
        raise PdfError(f"cannot compile {str(tex)!r}: the file does not exist (write the report first)")
    log = tex.with_suffix(".log")
    pdf = tex.with_suffix(".pdf")
    for run in range(1, runs + 1):
        try:
            proc = subprocess.run([exe, "-interaction=nonstopmode", "-halt-on-error", "-file-line-error", tex.name],
                                  cwd=out, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise PdfError(f"pdflatex run {run} on {str(tex)!r} took longer than {timeout:g} s and was stopped "
                           f"(see {str(log)!r})") from None
        if proc.returncode != 0 or not pdf.is_file():
            text = log.read_text(errors="replace") if log.is_file() else proc.stdout.decode(errors="replace")
            errors = latex_log_problems(text)["errors"][:5] or text.strip().splitlines()[-5:]
            raise PdfError(f"pdflatex failed on {str(tex)!r} (exit {proc.returncode}; log {str(log)!r}): "
                           + " | ".join(errors))
    return pdf


_OVERFULL = re.compile(r"Overfull \\hbox \(([\d.]+)pt too wide\) ((?:in paragraph|in alignment|detected)[^\n]*)")


def latex_log_problems(log: str) -> Dict[str, List]:
    """``{"overfull": [(points, where)], "undefined": [lines], "errors": [lines]}`` of a pdflatex log
    (``errors``: every ``!`` line and ``file:line: error`` line, undefined control sequences included)."""
    overfull = [(float(w), where.strip()) for w, where in _OVERFULL.findall(log)]
    errors = [line.strip() for line in log.splitlines()
              if line.startswith("!") or re.match(r"^[^:\s]+\.tex:\d+: ", line)]
    undefined = [line for line in errors if "Undefined control sequence" in line]
    return {"overfull": overfull, "undefined": undefined, "errors": errors}


_MATH = re.compile(r"\\\((.+?)\\\)|\\\[(.+?)\\\]|\$\$(.+?)\$\$|(?<![\\$])\$([^$]+?)\$"
                   r"|\\begin\{(?:aligned|gathered|align\*?|equation\*?|multline\*?|gather\*?)\}(.+?)"
                   r"\\end\{(?:aligned|gathered|align\*?|equation\*?|multline\*?|gather\*?)\}", re.S)
_VERBATIM = re.compile(r"\\begin\{verbatim\}.*?\\end\{verbatim\}", re.S)


def prose_in_math(tex: str) -> List[str]:
    """The math groups of a LaTeX source that contain words (see the module docstring); verbatim
    blocks and escaped dollars are skipped."""
    source = _VERBATIM.sub("", tex).replace(r"\$", "")
    found = []
    for match in _MATH.finditer(source):
        body = next(g for g in match.groups() if g is not None)
        if is_prose(body):
            found.append(" ".join(body.split()))
    return found
