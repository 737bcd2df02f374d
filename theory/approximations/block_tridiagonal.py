"""Block tri-diagonal NGD: ``alpha = 1^T T^+ 1 = ceiling(L/3)``; ``T`` is singular for ``L = 2 mod 3``
(Karakida & Osawa 2020, arXiv:2010.00879, Sec. 4.2; the closed form is derived in :mod:`theory.banded`).

>>> from theory.isotropy import isotropy_constant
>>> isotropy_constant("block_tridiagonal", depth=5)
2
"""
from __future__ import annotations

from theory.patterns import tridiagonal_pattern
from theory.registry import register_theory

from ._banded import banded_isotropy
from ._layerwise import integer_depth, pattern_test_kernel_of

__all__ = ["block_tridiagonal_isotropy"]


@register_theory("block_tridiagonal", label="block tri-diagonal",
                 test_kernel=pattern_test_kernel_of(
                     lambda s: tridiagonal_pattern(integer_depth(s, "block_tridiagonal"))))
def block_tridiagonal_isotropy(setting):
    """alpha = 1^T T^+ 1 = ceiling(L/3)."""
    return banded_isotropy("block_tridiagonal", setting, 1)
