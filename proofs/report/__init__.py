"""Results as strict JSON, and the derivation report (Markdown + LaTeX + JSON + PNG figures).

One module per output format, the shared helpers in one more; everything public is re-exported
here, so ``from proofs.report import X`` works for every name below.

* :mod:`proofs.report.common` -- strict JSON values (:func:`to_jsonable`, :func:`dumps_strict`: no
  NaN/Infinity tokens, non-finite floats become ``"nan"``/``"inf"``/``"-inf"``), atomic writes
  (:func:`atomic_write_text`, :func:`atomic_write_bytes`: temp file + fsync + ``os.replace``) and
  the short renderings the writers share (:func:`fmt`, :func:`slug`, :func:`statement_kind`).
* :mod:`proofs.report.results` -- ``results.json``: :func:`results_document` (the JSON document of
  a run per ``shared/interface.md``), :func:`claim_record`, :func:`summarize`, :func:`write_json`.
* :mod:`proofs.report.markdown` -- ``report.md``: :func:`markdown_report`.
* :mod:`proofs.report.latex` -- ``report.tex``: :func:`latex_report`, :func:`tex_escape`,
  :func:`tex_math`, :func:`tex_mixed`.
* :mod:`proofs.report.png` -- ``figures/*.png``: :func:`draw_figures`, :func:`overview_series`,
  :func:`draw_overview` (series in the one schema of :mod:`proofs.figures`).
* :mod:`proofs.report.pdf` -- ``report.pdf``: :func:`write_pdf` (pdflatex twice, non-interactive,
  with a timeout; :class:`PdfUnavailable` with what to install when pdflatex is missing),
  :func:`check_pdf_toolchain`, and the checks the tests apply to a compilation
  (:func:`latex_log_problems`, :func:`prose_in_math`).
* :func:`write_report` (here) -- all of them into one directory, every number from this run;
  ``pdf=True`` also compiles ``report.pdf``.

>>> dumps_strict({"x": float("nan"), "y": [1.0, float("inf")]})
'{"x": "nan", "y": [1.0, "inf"]}'
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from proofs.claim import RunConfig
from proofs.conventions import conventions
from proofs.environment import environment_record
from proofs.report.common import (Pair, atomic_write_bytes, atomic_write_text, dumps_strict, fmt, slug,
                                  statement_kind, to_jsonable)
from proofs.report.latex import latex_report, tex_escape, tex_math, tex_mixed
from proofs.report.markdown import markdown_report
from proofs.report.pdf import (PdfError, PdfUnavailable, check_pdf_toolchain, latex_log_problems, prose_in_math,
                               write_pdf)
from proofs.report.png import OVERVIEW_SHORT, OVERVIEW_TITLES, draw_figures, draw_overview, overview_series
from proofs.report.results import claim_record, results_document, summarize, write_json
from proofs.report.common import CONTROL as _CONTROL

__all__ = ["Pair", "to_jsonable", "dumps_strict", "atomic_write_bytes", "atomic_write_text", "fmt", "slug",
           "statement_kind", "claim_record", "summarize", "results_document", "write_json", "markdown_report",
           "latex_report", "tex_escape", "tex_math", "tex_mixed", "draw_figures", "overview_series", "draw_overview",
           "OVERVIEW_TITLES", "OVERVIEW_SHORT", "write_report", "conventions", "environment_record", "write_pdf",
           "check_pdf_toolchain", "PdfError", "PdfUnavailable", "latex_log_problems", "prose_in_math"]


def write_report(pairs: Sequence[Pair], cfg: RunConfig, out_dir, environment: Optional[dict] = None,
                 pdf: bool = False) -> Dict[str, Any]:
    """Write ``report.md``, ``report.tex``, ``results.json`` and ``figures/*.png`` into ``out_dir``
    (created if missing) atomically; return ``{"markdown", "latex", "json", "figures": [paths]}``.

    ``pdf=True`` also compiles ``report.pdf`` (:func:`write_pdf`; the key ``"pdf"``).  pdflatex is
    probed first, so :class:`PdfUnavailable` is raised before anything is written when it is missing;
    a compilation error raises :class:`PdfError` after the other files are written.
    """
    if pdf:
        check_pdf_toolchain()
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    doc = results_document(pairs, cfg, environment)
    figures = draw_figures(pairs, out)
    figures["__overview__"] = draw_overview(pairs, out)
    paths = {
        "json": write_json(out / "results.json", doc),
        "markdown": atomic_write_text(out / "report.md", _CONTROL.sub("?", markdown_report(doc, pairs, figures))),
        "latex": atomic_write_text(out / "report.tex", _CONTROL.sub("?", latex_report(doc, pairs, figures, out))),
        "figures": [out / f["path"] for figs in figures.values() for f in figs if "path" in f],
    }
    if pdf:
        paths["pdf"] = write_pdf(out)
    return paths
