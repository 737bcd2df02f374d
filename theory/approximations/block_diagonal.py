"""Layer-wise block-diagonal NGD: ``alpha = L`` (Karakida & Osawa 2020, arXiv:2010.00879, Thm. 4).

>>> from theory.isotropy import isotropy_constant
>>> isotropy_constant("block_diagonal", depth=4)
4
"""
from __future__ import annotations

from theory.patterns import block_diagonal_pattern
from theory.registry import register_theory

from ._banded import banded_isotropy
from ._layerwise import integer_depth, pattern_test_kernel_of

__all__ = ["block_diagonal_isotropy"]


@register_theory("block_diagonal", label="block-diagonal",
                 test_kernel=pattern_test_kernel_of(
                     lambda s: block_diagonal_pattern(integer_depth(s, "block_diagonal"))))
def block_diagonal_isotropy(setting):
    """alpha = 1^T I^+ 1 = L."""
    return banded_isotropy("block_diagonal", setting, 0)
