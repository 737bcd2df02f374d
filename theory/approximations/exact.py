"""Exact NGD (the full Fisher): ``alpha = 1``.

``J F^+ J^T / N = J J^T (J J^T)^+ = I`` whenever ``J`` has full row rank ``N C`` -- at any width
(Karakida & Osawa 2020, arXiv:2010.00879, Sec. 3; the pattern ``S = 1 1^T`` of :mod:`._layerwise`).

>>> from theory.isotropy import isotropy_constant
>>> isotropy_constant("exact", depth=4)
1
"""
from __future__ import annotations

import sympy as sp

from theory.derivation import Derivation
from theory.non_isotropic import IsotropyResult
from theory.patterns import exact_pattern
from theory.registry import register_theory

from ._layerwise import LAYERWISE_CONDITIONS, check_layer_ranks, depth_of, integer_depth, pattern_result, \
    pattern_test_kernel_of

__all__ = ["exact_isotropy"]

_CONDITIONS = ["J has full row rank N C", LAYERWISE_CONDITIONS[1]]


@register_theory("exact", label="exact NGD",
                 test_kernel=pattern_test_kernel_of(lambda s: exact_pattern(integer_depth(s, "exact"))))
def exact_isotropy(setting) -> IsotropyResult:
    """alpha = 1 (numeric depth: from the pattern 1 1^T; symbolic depth: c = 1/L solves (1 1^T) c = 1)."""
    L = depth_of(setting)
    check_layer_ranks(setting, only_total=True)
    if L.is_number:
        return pattern_result("exact", exact_pattern(int(L)), _CONDITIONS)
    d = Derivation("Exact NGD: alpha = 1", r"\mathbf 1^T (\mathbf 1\mathbf 1^T)^+ \mathbf 1 = 1",
                   ["J has full row rank N C"])
    d.add_step("c = 1/L solves (1 1^T) c = 1", L * (1 / L), 1, "each row sums L entries 1/L")
    d.add_step("alpha = 1^T c", L * (1 / L), 1, "alpha = 1^T c' for any solution c'")
    d.check()
    return IsotropyResult("exact", sp.Integer(1), ["J has full row rank N C"], d, True)
