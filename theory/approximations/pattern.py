"""Any symmetric L x L 0/1 block pattern ``S`` (unit diagonal): ``alpha = 1^T S^+ 1`` when
``1 in range(S)`` and ``alpha != 0`` (derived here, :mod:`theory.patterns`; generalises Karakida & Osawa
2020, arXiv:2010.00879, Sec. 4).

>>> from theory.isotropy import isotropy_constant
>>> isotropy_constant("pattern", pattern=[[1, 1, 0], [1, 1, 1], [0, 1, 1]])
1
"""
from __future__ import annotations

from theory.patterns import validate_pattern
from theory.registry import register_theory

from ._layerwise import LAYERWISE_CONDITIONS, check_layer_ranks, depth_of, pattern_result, pattern_test_kernel_of

__all__ = ["pattern_isotropy"]


def _pattern(setting):
    pattern = setting.option("pattern")
    if pattern is None:
        raise ValueError("approximation='pattern' needs pattern=S (an L x L symmetric 0/1 matrix, unit diagonal)")
    return validate_pattern(pattern)


@register_theory("pattern", label="block pattern", options=("pattern",), test_kernel=pattern_test_kernel_of(_pattern))
def pattern_isotropy(setting):
    """alpha = 1^T S^+ 1, or NotIsotropic when 1 is not in range(S) or alpha = 0."""
    S = _pattern(setting)
    L = depth_of(setting, S)
    if L.is_number and S.rows != int(L):
        raise ValueError(f"pattern is {S.rows} x {S.rows} but depth={L}")
    check_layer_ranks(setting, only_total=False)
    return pattern_result("pattern", S, list(LAYERWISE_CONDITIONS) + ["1 in range(S)"])
