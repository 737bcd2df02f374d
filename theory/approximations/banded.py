"""Banded block patterns of half-bandwidth ``b``: ``alpha = ceiling(L / (2b + 1))`` (derived here,
:mod:`theory.banded`; generalises Karakida & Osawa 2020, arXiv:2010.00879, Sec. 4.2).

>>> from theory.isotropy import isotropy_constant
>>> isotropy_constant("banded", depth=7, bandwidth=2)
2
"""
from __future__ import annotations

import sympy as sp

from theory.patterns import banded_pattern
from theory.registry import register_theory

from ._banded import banded_isotropy
from ._layerwise import integer_depth, pattern_test_kernel_of

__all__ = ["banded_isotropy_of"]


def _bandwidth(setting):
    bandwidth = setting.option("bandwidth")
    if bandwidth is None:
        raise ValueError("approximation='banded' needs bandwidth=b (half-bandwidth, |l-l'| <= b)")
    b = sp.sympify(bandwidth)
    if b.is_number and (not b.is_integer or b < 0):
        raise ValueError(f"bandwidth={bandwidth!r} is not allowed: expected an integer >= 0")
    return b


@register_theory("banded", label="banded", options=("bandwidth",),
                 test_kernel=pattern_test_kernel_of(
                     lambda s: banded_pattern(integer_depth(s, "banded"), int(_bandwidth(s)))))
def banded_isotropy_of(setting):
    """alpha = ceiling(L / (2b + 1)) for the pattern |l - l'| <= b."""
    return banded_isotropy("banded", setting, _bandwidth(setting))
