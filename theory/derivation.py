"""Derivation objects: a result together with the named, machine-checked steps that produce it.

A :class:`Derivation` is a list of :class:`Step` s.  Each step states an identity ``lhs = rhs``
(SymPy scalars or matrices) with a justification, and knows how to check itself: by default
``simplify(lhs - rhs) == 0``; a step may instead carry its own ``checker`` (for instance a limit,
or a numeric check on a random instance).  ``Derivation.check()`` runs every step and records
which ones held, and the object renders to LaTeX / Markdown for the reports.

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

from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional

import sympy as sp

__all__ = ["Derivation", "Step"]


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
        left = self.lhs if isinstance(self.lhs, str) else sp.latex(self.lhs)
        right = self.rhs if isinstance(self.rhs, str) else sp.latex(self.rhs)
        return f"{left} = {right}"

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
                 checker: Optional[Callable[[], bool]] = None) -> Step:
        step = Step(name, lhs, rhs, justification, checker)
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

    def to_latex(self) -> str:
        lines = [rf"\paragraph{{{self.title}}}"]
        if self.statement:
            lines.append(rf"\[ {self.statement} \]")
        if self.assumptions:
            lines.append(r"\textit{Assumptions:} " + "; ".join(self.assumptions) + ".")
        lines.append(r"\begin{enumerate}")
        for s in self.steps:
            lines.append(rf"\item \textbf{{{s.name}}} ({s.status}): \( {s.latex()} \). {s.justification}")
        lines.append(r"\end{enumerate}")
        return "\n".join(lines)

    def to_markdown(self) -> str:
        lines = [f"**{self.title}**", ""]
        if self.statement:
            lines += [f"$${self.statement}$$", ""]
        if self.assumptions:
            lines += ["*Assumptions:* " + "; ".join(self.assumptions) + ".", ""]
        for i, s in enumerate(self.steps, 1):
            mark = {"checked": "✔", "failed": "✘", "error": "✘"}.get(s.status, "?")
            lines.append(f"{i}. {mark} *{s.name}*: ${s.latex()}$ {s.justification}".rstrip())
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
