"""Banded block patterns ``|l - l'| <= b`` (block-diagonal b = 0, block tri-diagonal b = 1, general b).

``alpha = 1^T S_b^+ 1 = ceiling(L / (2b + 1))`` (Karakida & Osawa 2020, arXiv:2010.00879, Thm. 4 for
b = 0; the tri-diagonal value and the general-b closed form are derived in :mod:`theory.banded`).
"""
from __future__ import annotations

import sympy as sp

from theory.banded import banded_alpha_closed_form, banded_closed_form_derivation, tridiagonal_closed_form_derivation
from theory.derivation import Derivation
from theory.non_isotropic import IsotropyResult
from theory.patterns import banded_pattern

from ._layerwise import LAYERWISE_CONDITIONS, check_layer_ranks, depth_of, pattern_result

__all__ = ["banded_isotropy"]


def banded_isotropy(name: str, setting, b) -> IsotropyResult:
    """alpha of the half-bandwidth-``b`` pattern, exact rational pinv for numbers, closed form for symbols."""
    L = depth_of(setting)
    check_layer_ranks(setting, only_total=False)
    b = sp.sympify(b)
    closed = banded_alpha_closed_form(L, b)
    if L.is_number and b.is_number:
        return pattern_result(name, banded_pattern(int(L), int(b)), LAYERWISE_CONDITIONS, closed)
    if b == 0:
        d = Derivation("Block-diagonal NGD: alpha = L", r"\mathbf 1^T I^+ \mathbf 1 = L", list(LAYERWISE_CONDITIONS))
        d.add_step("c = I^+ 1 = 1, alpha = sum_l 1", sp.summation(1, (sp.Symbol("l"), 1, L)), L, "")
        d.add_step("closed form ceiling(L/1)", closed, L, "")
        d.check()
    elif b == 1:
        d = tridiagonal_closed_form_derivation()
    elif b.is_number:
        d = banded_closed_form_derivation(int(b))
    else:  # symbolic bandwidth: the perfect-code proof, checked for b = 1, 2, 3
        d = Derivation("Banded pattern: alpha = ceiling(L/(2b+1))", r"\lceil L/(2b+1)\rceil",
                       list(LAYERWISE_CONDITIONS))
        for bb in (1, 2, 3):
            sub = banded_closed_form_derivation(bb)
            d.add_step(f"perfect-code proof for b = {bb}", sp.Integer(int(sub.verified)), 1, sub.title)
        d.check()
    return IsotropyResult(name, sp.sympify(closed), list(LAYERWISE_CONDITIONS), d, True,
                          ["rho -> 0+ limit equals G^+ grad because grad lies in range(G) (1 in range(S))"])
